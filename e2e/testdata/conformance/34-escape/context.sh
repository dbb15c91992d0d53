mkdir dir
echo w > dir/file

echo foo > foo
mkdir dir
echo x > dir/x

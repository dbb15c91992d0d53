echo a > a
chmod 664 a
mkdir dir
echo x > dir/x
chmod 664 dir/x
mkdir dir/sub
chmod 700 dir/sub

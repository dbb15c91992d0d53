mkdir -p dir/sub dir/empty
echo x > dir/x
echo y > dir/sub/y
echo f > file

echo f > f
mkdir -p dir/s
echo x > dir/s/x

echo a > a1
echo b > a2

echo a > a.txt
echo b > b.txt
echo c > c.txt
mkdir dir dor
echo 1 > dir/1.md
echo 2 > dor/2.md
echo n > dir/n.txt

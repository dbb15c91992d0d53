echo a > a.txt
echo b > b.txt
echo c > c.md

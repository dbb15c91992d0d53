mkdir -p src/sub
echo a > src/a
echo b > src/sub/b
chmod 600 src/a
chown 7:8 src/sub/b
tar -cf plain.tar -C src .
tar -czf comp.tar.gz -C src a sub
echo plain | gzip > notar.gz
rm -rf src

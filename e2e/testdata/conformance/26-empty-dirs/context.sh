mkdir -p empty nested/a/b nested/c
chmod 700 nested/c
echo x > nested/a/x

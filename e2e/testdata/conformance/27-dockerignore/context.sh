mkdir -p logs/keep a/b/c docs
echo 1 > logs/1.log
echo 2 > logs/keep/important.log
echo 3 > a/b/c/deep.tmp
echo 4 > a/top.tmp
echo 5 > docs/readme.md
echo 6 > docs/secret.md
echo 7 > main.go
printf 'logs\n!logs/keep\n**/*.tmp\ndocs/*.md\n!docs/readme.md\n.dockerignore\n' > .dockerignore

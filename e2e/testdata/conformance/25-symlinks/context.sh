mkdir -p ctx/d
echo t > ctx/target
ln -s target ctx/ln
ln -s d ctx/lndir
echo in > ctx/d/in
ln -s /etc/passwd ctx/abs
echo f > f

mkdir ctx
echo x > ctx/f1
ln ctx/f1 ctx/f2
echo y > ctx/g

// The docker/login-action stand-in: the test registry takes anonymous pushes.
console.log('login: not needed for the test registry');

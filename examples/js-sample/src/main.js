const { makeGreeting } = require("./greet");

console.log(makeGreeting("world"));

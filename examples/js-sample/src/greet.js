// A small JavaScript sample for the learning library's jscodeshift and eslint entries.
function makeGreeting(name) {
  return `Hello, ${name}!`;
}

function greetAll(names) {
  return names.map((name) => makeGreeting(name));
}

module.exports = { makeGreeting, greetAll };

// Rename a function: its declaration, every reference and named imports/exports.
// jscodeshift passes its unknown options to the transform: --old NAME --new NAME.
module.exports = function renameFunction(file, api, options) {
  const j = api.jscodeshift;
  if (!options.old || !options.new) {
    throw new Error("rename_function.js needs --old NAME and --new NAME");
  }
  const root = j(file.source);
  const named = root.find(j.Identifier, { name: options.old });
  if (named.size() === 0) {
    return null; // unchanged: jscodeshift leaves the file as it is
  }
  named.forEach((path) => {
    path.node.name = options.new;
  });
  return root.toSource();
};

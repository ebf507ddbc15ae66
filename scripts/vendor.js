// Copies the browser files the service serves from node_modules into the package, so that
// running it needs neither npm nor any third-party host: `npm ci && npm run vendor`.
const fs = require("fs");

const dst = "src/wipsvc/web/static/vendor/";
// [package, file in the package, name under vendor/]
const files = [
  ["socket.io-client", "dist/socket.io.min.js", "socket.io.min.js"],
  ["socket.io-client", "LICENSE", "socket.io-client.LICENSE"],
  ["swagger-ui-dist", "swagger-ui-bundle.js", "swagger-ui-bundle.js"],
  ["swagger-ui-dist", "swagger-ui.css", "swagger-ui.css"],
  ["swagger-ui-dist", "LICENSE", "swagger-ui.LICENSE"],
  ["redoc", "bundles/redoc.standalone.js", "redoc.standalone.js"],
  ["redoc", "LICENSE", "redoc.LICENSE"],
];

fs.mkdirSync(dst, { recursive: true });
for (const [pkg, file, name] of files) {
  let text = fs.readFileSync(`node_modules/${pkg}/${file}`, "utf8");
  // The source maps are not vendored: drop the comments that would make browsers ask for them.
  text = text.replace(/\n\/[/*]# sourceMappingURL=[^\n]*\s*$/, "\n");
  fs.writeFileSync(dst + name, text);
}
for (const pkg of new Set(files.map(([pkg]) => pkg))) {
  console.log(`vendored ${pkg} ${require(`${pkg}/package.json`).version} into ${dst}`);
}

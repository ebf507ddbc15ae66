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

// ReDoc's sidebar shows a logo from its vendor's CDN: the only request these files would make
// to another host. An empty image from a data: URL takes its place.
const replacements = {
  "redoc.standalone.js": [
    ['"https://cdn.redoc.ly/redoc/logo-mini.svg"', `"data:image/svg+xml,%3Csvg xmlns='http://www.w3.org/2000/svg'/%3E"`],
  ],
};

fs.mkdirSync(dst, { recursive: true });
for (const [pkg, file, name] of files) {
  let text = fs.readFileSync(`node_modules/${pkg}/${file}`, "utf8");
  // The source maps are not vendored: drop the comments that would make browsers ask for them.
  text = text.replace(/\n\/[/*]# sourceMappingURL=[^\n]*\s*$/, "\n");
  for (const [from, to] of replacements[name] || []) {
    if (!text.includes(from)) throw new Error(`${name}: "${from}" not found; check the replacement`);
    text = text.split(from).join(to);
  }
  fs.writeFileSync(dst + name, text);
}
for (const pkg of new Set(files.map(([pkg]) => pkg))) {
  console.log(`vendored ${pkg} ${require(`${pkg}/package.json`).version} into ${dst}`);
}

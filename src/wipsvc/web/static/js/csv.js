// Parse "sku,url" lines (pasted or from a CSV file) into products, with per-line errors.

// Mirrors the API's rule (schemas.SKU_PATTERN) so most mistakes are caught before sending.
const SKU = /^[A-Za-z0-9][A-Za-z0-9._\-/]{0,63}$/;
export const MAX_PRODUCTS = 1000;

/** Split one CSV record, honouring double quotes ("a,b" and "" escapes). */
export function splitRecord(line, delimiter) {
  const cells = [];
  let cell = "";
  let quoted = false;
  for (let i = 0; i < line.length; i += 1) {
    const c = line[i];
    if (quoted) {
      if (c === '"' && line[i + 1] === '"') { cell += '"'; i += 1; }
      else if (c === '"') quoted = false;
      else cell += c;
    } else if (c === '"' && cell.trim() === "") {
      quoted = true;
      cell = "";
    } else if (c === delimiter) {
      cells.push(cell.trim());
      cell = "";
    } else {
      cell += c;
    }
  }
  cells.push(cell.trim());
  return cells;
}

function detectDelimiter(lines) {
  const sample = lines.slice(0, 5).join("\n");
  if (sample.includes("\t")) return "\t";
  if (!sample.includes(",") && sample.includes(";")) return ";";
  return ",";
}

/**
 * Returns {products: [{sku, url}], errors: ["line 3: …"]}. A header row naming `sku` and `url`
 * picks those columns (so an exported sheet with more columns works); without one, the
 * first two columns are used. Blank lines and lines starting with # are ignored.
 */
export function parseProducts(text) {
  const lines = text.replace(/^\uFEFF/, "").split(/\r?\n/);
  const delimiter = detectDelimiter(lines.filter((l) => l.trim()));
  const products = [];
  const errors = [];
  const seen = new Map();
  let skuCol = 0;
  let urlCol = 1;
  let headerDone = false;
  lines.forEach((raw, index) => {
    const lineNo = index + 1;
    const line = raw.trim();
    if (!line || line.startsWith("#")) return;
    const cells = splitRecord(line, delimiter);
    if (!headerDone) {
      headerDone = true;
      const lower = cells.map((c) => c.toLowerCase());
      if (lower.includes("sku")) {
        skuCol = lower.indexOf("sku");
        urlCol = lower.findIndex((c) => c === "url" || c === "product_url" || c === "link");
        if (urlCol < 0) errors.push(`line ${lineNo}: header has no "url" column`);
        return;
      }
    }
    const sku = cells[skuCol] || "";
    const url = urlCol >= 0 ? cells[urlCol] || "" : "";
    if (!sku || !url) {
      errors.push(`line ${lineNo}: expected "sku,url"`);
      return;
    }
    if (!SKU.test(sku)) {
      errors.push(`line ${lineNo}: SKU "${sku}" may only use letters, digits, . _ - / (max 64)`);
      return;
    }
    let parsed;
    try {
      parsed = new URL(url);
    } catch {
      parsed = null;
    }
    if (!parsed || !/^https?:$/.test(parsed.protocol)) {
      errors.push(`line ${lineNo}: "${url}" is not an http(s) URL`);
      return;
    }
    if (seen.has(sku)) {
      errors.push(`line ${lineNo}: SKU ${sku} already on line ${seen.get(sku)}`);
      return;
    }
    seen.set(sku, lineNo);
    products.push({ sku, url });
  });
  if (products.length > MAX_PRODUCTS) {
    errors.push(`${products.length} products: at most ${MAX_PRODUCTS} can be added at once`);
  }
  return { products, errors };
}

// The "Add products" form: paste `sku,url` lines or load a CSV file, check, then POST.

import { endpoints } from "../api.js";
import { h, clear, notice, debounce, plural, announce } from "../dom.js";
import { parseProducts } from "../csv.js";

const EXAMPLE = "ABC123,https://shop.example/p/abc123\nABC124,https://shop.example/p/abc124";

/** onAdded(wipIds) is called after the API created the products. */
export function addProductsForm(collection, onAdded) {
  const textarea = h("textarea", {
    id: "add-lines", name: "lines", rows: 6, wrap: "off", spellcheck: "false", autocomplete: "off",
    placeholder: EXAMPLE, "aria-describedby": "add-lines-hint add-preview",
  });
  const file = h("input", { id: "add-file", type: "file", accept: ".csv,.tsv,.txt,text/csv,text/plain" });
  const preview = h("p", { id: "add-preview", class: "hint", "aria-live": "polite" });
  const submit = h("button", { class: "btn btn-primary", type: "submit", id: "add-submit" }, "Add products");
  const result = h("div", { id: "add-result" });

  const form = h("form", { id: "add-form", "aria-labelledby": "add-title", novalidate: true },
    h("div", { class: "field" },
      h("label", { for: "add-lines" }, "Paste products"),
      textarea,
      h("p", { class: "hint", id: "add-lines-hint" },
        "One product per line: ", h("code", {}, "sku,url"), ". A header row with ", h("code", {}, "sku"), " and ",
        h("code", {}, "url"), " columns is recognised, so exported sheets work too."),
      preview),
    h("div", { class: "field" },
      h("label", { for: "add-file" }, "…or load a CSV file"),
      file,
      h("p", { class: "hint" }, "The file's lines appear above for you to check before adding.")),
    h("div", { class: "actions" }, submit),
    result);

  const updatePreview = () => {
    const text = textarea.value.trim();
    if (!text) {
      preview.textContent = "";
      return;
    }
    const { products, errors } = parseProducts(text);
    preview.textContent = `${plural(products.length, "product")} ready to add` +
      (errors.length ? `, ${plural(errors.length, "problem")} to fix` : "");
  };
  textarea.addEventListener("input", debounce(updatePreview, 250));

  file.addEventListener("change", async () => {
    const chosen = file.files && file.files[0];
    if (!chosen) return;
    if (chosen.size > 2_000_000) {
      clear(result).append(notice("bad", "That file is larger than 2 MB; split it into smaller batches."));
      return;
    }
    textarea.value = await chosen.text();
    updatePreview();
    textarea.focus();
  });

  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    clear(result);
    const { products, errors } = parseProducts(textarea.value);
    if (errors.length) {
      result.append(notice("bad", `Nothing was added: fix ${plural(errors.length, "line")} first.`, errors.slice(0, 10)));
      textarea.focus();
      return;
    }
    if (!products.length) {
      result.append(notice("bad", "Paste at least one sku,url line."));
      textarea.focus();
      return;
    }
    submit.disabled = true;
    submit.textContent = "Adding…";
    try {
      const body = await endpoints.createProducts(collection, products);
      textarea.value = "";
      file.value = "";
      preview.textContent = "";
      const message = `Added ${plural(body.wip_ids.length, "product")}. They are selected in the table: press “Start job” to process them.`;
      result.append(notice("ok", message));
      announce(message);
      onAdded(body.wip_ids);
    } catch (error) {
      const details = Array.isArray(error.details) ? [] : Object.entries(error.details || {}).map(([k, v]) => `${k}: ${JSON.stringify(v)}`);
      result.append(notice("bad", error.friendly || error.message, details));
    } finally {
      submit.disabled = false;
      submit.textContent = "Add products";
    }
  });

  return h("section", { class: "card", "aria-labelledby": "add-title" },
    h("div", { class: "card-head" }, h("h2", { id: "add-title" }, "Add products")), form);
}

"""The built-in extractor on real product pages, scored like the published systems.

    python bench/extraction.py [--pages bench/data/product-pages] [--failures] [--no-prompt]

Each page of the development set (``bench/data/product-pages``: 72 real product pages with
hand-made ground truth, MIT-licensed, see its README) is served to the service's own page
fetcher (``SafeFetcher``, through an in-memory transport: nothing leaves the process), so it is
decoded by the scraper's charset handling, then run through the pipeline's extraction step with
no LLM configured. Prints, per attribute, precision, recall and F1 with the data set's scoring,
side by side with the three published systems on the same pages; the products that failed; the
CPU time of the extraction step per page; and the prompt the LLM would get for the fields still
missing (the real prompt-building code, tokens estimated offline).

Scoring: one value per attribute per page; a true positive when it matches one of the expected
values (prices as decimals, the rest exactly), a wrong value counts as a false positive and a
false negative. ``currency`` is written in the data set as the page shows it (``$``, ``Lei``):
each shown form maps to the ISO 4217 codes it can denote, and a prediction (ours a code, the
published systems' a code or a symbol) matches when it denotes one of them. Availability is
scored as ``InStock``/``OutOfStock`` (other schema.org states count as in stock unless sold out
or discontinued); ``in-stock`` and ``out-of-stock`` score each state on its own.
"""

from __future__ import annotations

import argparse
import asyncio
import gzip
import json
import statistics
import sys
import time
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from wipsvc.adapters.base import FetchedPage  # noqa: E402
from wipsvc.adapters.builtin_extractor import StructuredDataExtractor, main_text  # noqa: E402
from wipsvc.adapters.llm import PRODUCT_FIELDS, extraction_messages  # noqa: E402
from wipsvc.adapters.scraper import SafeFetcher  # noqa: E402
from wipsvc.adapters.token_estimate import estimate_tokens  # noqa: E402
from wipsvc.domain.errors import StepError  # noqa: E402
from wipsvc.extraction.availability import is_available  # noqa: E402

PAGES = ROOT / "bench" / "data" / "product-pages"
SYSTEMS = ("Zyte", "Diffbot", "extruct")
ATTRIBUTES = ("price", "availability", "InStock", "OutOfStock", "brand", "currency", "gtin", "mpn")
SHOWN_LABEL = {"InStock": "in-stock", "OutOfStock": "out-of-stock"}
# Each currency form the data set shows, to the ISO 4217 codes it can denote.
SHOWN_CURRENCIES: dict[str, set[str]] = {
    "$": {"USD", "CAD", "AUD", "NZD", "MXN", "ARS", "CLP", "COP", "SGD", "HKD", "TWD", "UYU", "BRL"},
    "€": {"EUR"}, "£": {"GBP"}, "Rs": {"INR", "PKR", "LKR", "NPR"}, "₹": {"INR"}, "ر.س": {"SAR"},
    "Kn": {"HRK"}, "Lei": {"RON", "MDL"}, "zł": {"PLN"}, "원": {"KRW"}, "원~": {"KRW"}, "тг.": {"KZT"},
    "тг": {"KZT"}, "¥": {"JPY", "CNY"}, "kr": {"SEK", "NOK", "DKK", "ISK"}, "R$": {"BRL"},
}  # fmt: skip


def currency_codes(shown: str) -> set[str]:
    text = shown.strip()
    if len(text) == 3 and text.isalpha() and text.isupper():
        return {text}
    return SHOWN_CURRENCIES.get(text, set())


def stock_state(value: str) -> str:
    return "" if not value else ("InStock" if is_available(value) else "OutOfStock")


def matches(attribute: str, predicted: str, expected: list[str]) -> bool:
    if attribute == "price":
        try:
            return any(Decimal(predicted.strip()) == Decimal(e.strip()) for e in expected)
        except InvalidOperation:
            return False
    if attribute == "currency":
        return any(currency_codes(predicted) & currency_codes(e) for e in expected)
    return predicted.strip() in [e.strip() for e in expected]


@dataclass
class Score:
    tp: int = 0
    fp: int = 0
    fn: int = 0

    def add(self, attribute: str, predicted: str, expected: list[str] | None) -> None:
        if predicted and expected and matches(attribute, predicted, expected):
            self.tp += 1
            return
        self.fp += bool(predicted)
        self.fn += bool(expected)

    @property
    def precision(self) -> float:
        return self.tp / (self.tp + self.fp) if self.tp + self.fp else 0.0

    @property
    def recall(self) -> float:
        return self.tp / (self.tp + self.fn) if self.tp + self.fn else 0.0

    @property
    def f1(self) -> float:
        p, r = self.precision, self.recall
        return 2 * p * r / (p + r) if p + r else 0.0


def prediction(fields: dict[str, Any]) -> dict[str, str]:
    """One value per scored attribute from extracted fields (ours or a published system's)."""
    state = stock_state(str(fields.get("availability") or ""))
    values = {
        name: str(fields.get(name) or "").strip() for name in ("price", "currency", "brand", "gtin", "mpn")
    }
    return {**values, "availability": state, "InStock": "InStock" if state == "InStock" else "",
            "OutOfStock": "OutOfStock" if state == "OutOfStock" else ""}  # fmt: skip


def score(predictions: dict[str, dict[str, str]], truth: dict[str, dict[str, Any]]) -> dict[str, Score]:
    scores = {attribute: Score() for attribute in ATTRIBUTES}
    for key, expected in truth.items():
        predicted = predictions.get(key, {})
        for attribute in ATTRIBUTES:
            scores[attribute].add(attribute, predicted.get(attribute, ""), expected.get(attribute))
    return scores


@dataclass
class Run:
    predictions: dict[str, dict[str, str]] = field(default_factory=dict)
    fields: dict[str, dict[str, Any]] = field(default_factory=dict)
    failures: dict[str, str] = field(default_factory=dict)
    cpu_ms: list[float] = field(default_factory=list)
    prompt_tokens: list[int] = field(default_factory=list)


def load_truth(pages: Path = PAGES) -> dict[str, dict[str, Any]]:
    truth: dict[str, dict[str, Any]] = json.loads((pages / "ground-truth.json").read_text())
    return truth


async def run(pages: Path = PAGES, *, prompts: bool = True) -> Run:
    truth = load_truth(pages)
    bodies = {key: gzip.decompress((pages / "html" / f"{key}.html.gz").read_bytes()) for key in truth}
    urls = {expected["url"]: key for key, expected in truth.items()}

    def serve(request: httpx.Request) -> httpx.Response:
        original = str(request.url.copy_with(host=request.headers["host"].split(":")[0]))
        key = urls[original]
        return httpx.Response(200, headers={"content-type": "text/html"}, content=bodies[key])

    async def resolve(host: str, port: int) -> list[str]:
        return ["127.0.0.1"]  # the in-memory transport answers; nothing is sent anywhere

    fetcher = SafeFetcher(
        timeout=30, max_bytes=10_000_000, max_redirects=0, allowed_hosts=["127.0.0.0/8"],
        user_agent="bench", resolver=resolve, transport=httpx.MockTransport(serve),
    )  # fmt: skip
    extractor = StructuredDataExtractor()
    result = Run()
    async with fetcher:
        for url, key in urls.items():
            page = await fetcher.fetch(url)
            started = time.process_time()
            try:
                product = await extractor.extract(page, sku=key[:8])
            except StepError as exc:
                result.failures[key] = exc.message
                result.predictions[key] = {}
                continue
            finally:
                result.cpu_ms.append((time.process_time() - started) * 1000)
            result.fields[key] = product.fields
            result.predictions[key] = prediction(product.fields)
            if prompts:
                result.prompt_tokens.append(_prompt_tokens(page, key, product.fields))
    return result


def _prompt_tokens(page: FetchedPage, sku: str, fields: dict[str, Any]) -> int:
    from wipsvc.domain.products import ExtractedProduct

    product = ExtractedProduct(fields=dict(fields), main_text=main_text(page.text))
    missing = [name for name in PRODUCT_FIELDS if not fields.get(name)]
    messages = extraction_messages(page.url, sku, product, missing, product.main_text)
    return sum(estimate_tokens(str(message.get("content") or "")) for message in messages)


def published(pages: Path, system: str) -> dict[str, dict[str, str]]:
    data = json.loads((pages / "published" / f"{system}.json").read_text())
    return {key: prediction(fields) for key, fields in data.items()}


def report(result: Run, pages: Path = PAGES, *, show_failures: bool = False) -> None:
    truth = load_truth(pages)
    ours = score(result.predictions, truth)
    theirs = {system: score(published(pages, system), truth) for system in SYSTEMS}
    print(f"{len(truth)} pages; no LLM; the extraction step as the service runs it\n")
    header = f"{'attribute':<13}" + "".join(f"{name + ' P / R / F1':>24}" for name in ("wipsvc", *SYSTEMS))
    print(header)
    for attribute in ATTRIBUTES:
        cells = [ours[attribute], *(theirs[system][attribute] for system in SYSTEMS)]
        row = "".join(f"{s.precision:>9.3f} {s.recall:>6.3f} {s.f1:>6.3f} " for s in cells)
        print(f"{SHOWN_LABEL.get(attribute, attribute):<13}{row}".rstrip())
    oos = [k for k, v in truth.items() if "OutOfStock" in v.get("availability", [])]
    found = sum(result.predictions.get(k, {}).get("OutOfStock") == "OutOfStock" for k in oos)
    print(f"\nfailed products: {len(result.failures)} of {len(truth)}")
    for key, message in result.failures.items():
        print(f"  {key[:12]} {message}")
    print(f"out-of-stock pages recognised: {found} of {len(oos)}")
    cpu = sorted(result.cpu_ms)
    print(f"CPU per page, extraction step: median {statistics.median(cpu):.1f} ms, "
          f"p90 {cpu[int(0.9 * (len(cpu) - 1))]:.1f} ms, max {cpu[-1]:.1f} ms")  # fmt: skip
    if result.prompt_tokens:
        tokens = sorted(result.prompt_tokens)
        median = statistics.median(tokens)
        print(f"LLM extraction prompt per product (estimated tokens): median {median:.0f}, max {tokens[-1]}")
    if show_failures:
        for attribute in ATTRIBUTES:
            for key, expected in truth.items():
                predicted = result.predictions.get(key, {}).get(attribute, "")
                wanted = expected.get(attribute)
                if (predicted or wanted) and not (
                    predicted and wanted and matches(attribute, predicted, wanted)
                ):
                    shown = f"{key[:8]} got {predicted!r:<24} want {wanted}"
                    print(f"  {attribute:<12} {shown}  {expected['url'][:60]}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pages", type=Path, default=PAGES)
    parser.add_argument("--failures", action="store_true", help="list every wrong or missing value")
    parser.add_argument("--no-prompt", action="store_true", help="skip the LLM prompt sizes (main-text pass)")
    args = parser.parse_args()
    result = asyncio.run(run(args.pages, prompts=not args.no_prompt))
    report(result, args.pages, show_failures=args.failures)


if __name__ == "__main__":
    main()

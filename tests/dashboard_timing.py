"""The dashboard's load time, for bench-rollup: loads the overview for the last 30
days in headless Chromium and returns the milliseconds from navigation start until
#total-cost carries data-cost (the figures are on the page)."""

import statistics
import sys
from datetime import datetime, timedelta, timezone

from cdp import Browser

# Runs before the page's own script: notes performance.now() (milliseconds since
# navigation start) the moment #total-cost gets its data-cost attribute.
_WATCH = """
new MutationObserver((changes, obs) => {
  const e = document.getElementById('total-cost');
  if (e && e.hasAttribute('data-cost')) { window.__vgcCostAt = performance.now(); obs.disconnect(); }
}).observe(document, {subtree: true, childList: true, attributes: true,
                      attributeFilter: ['data-cost']});
"""


def overview_ms(url, key, runs=3, timeout=30):
    """Median over runs loads (after one warm-up load that fills the cache, as a
    returning user has it) of the ms from navigation to #total-cost[data-cost], for
    /?from=<today-29>&to=<tomorrow> (the last 30 days, UTC) with the key in the fragment."""
    today = datetime.now(timezone.utc).date()
    page_url = (f"{url.rstrip('/')}/?from={(today - timedelta(days=29)).isoformat()}"
                f"&to={(today + timedelta(days=1)).isoformat()}#key={key}")
    browser = Browser()
    try:
        page = browser.new_page(1280, 800)
        page.call("Page.addScriptToEvaluateOnNewDocument", source=_WATCH)
        times = []
        for i in range(runs + 1):
            page.call("Page.navigate", url=page_url)
            got = page.wait("window.__vgcCostAt || (document.getElementById('signin') &&"
                            " !document.getElementById('signin').hidden && -1)", timeout,
                            "#total-cost[data-cost]")
            if got == -1:
                raise RuntimeError("the dashboard asked to sign in: the key was refused")
            if i:
                times.append(float(got))
            page.call("Page.navigate", url="about:blank")
            page.wait("location.href === 'about:blank'", timeout)
        page.close()
        return statistics.median(times)
    finally:
        browser.close()


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit("usage: dashboard_timing.py COLLECTOR_URL READ_KEY")
    print(f"dashboard overview, last 30 days: {overview_ms(sys.argv[1], sys.argv[2]):.0f} ms")

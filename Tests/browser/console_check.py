"""Drives the web console in headless Chromium, as an analyst would, and reports what it saw as JSON.

Run by ConsoleBrowserTests (Tests/HealthCodeIntegrationTests) against a live backbone with demo data; the
Swift test decides pass or fail from the report. For each page, at 1280 and 390 pixels wide: the HTTP
status, console errors (including Content Security Policy violations), the text shown, whether the keyboard
reaches every control (Tab from the top of the page), and a full-page screenshot.

Input: one JSON object on stdin: base (the API's URL), key (an analyst key), purpose, subject (a red
person's pseudonym), proposal (a held change's id), artifacts (a directory for screenshots),
chromium (the browser's path). Output: one JSON object on stdout.
"""

import json
import sys

from playwright.sync_api import sync_playwright

WIDTHS = {"wide": (1280, 900), "narrow": (390, 844)}

# Every control a keyboard user must reach, tagged in the page so the Tab walk can name what it reached.
TAG_CONTROLS = """
() => {
  const selector = 'a[href], button, input:not([type=hidden]), select, textarea, [tabindex]:not([tabindex="-1"])';
  const controls = Array.from(document.querySelectorAll(selector)).filter(
    (element) => !element.disabled && element.getClientRects().length > 0);
  controls.forEach((element, index) => element.setAttribute('data-probe', String(index)));
  return controls.map((element) => (element.getAttribute('aria-label') || element.textContent || element.name || element.id || element.tagName).trim().slice(0, 60));
}
"""

UNLABELLED = """
() => Array.from(document.querySelectorAll('input:not([type=hidden]), select, textarea')).filter((input) => {
  if (input.getAttribute('aria-label') || input.getAttribute('aria-labelledby')) return false;
  return !(input.id && document.querySelector('label[for="' + input.id + '"]'));
}).map((input) => input.name || input.id || input.type)
"""


# Elements reaching past the right edge of the viewport outside a scrolling container: what makes a page
# wider than the screen.
OVERFLOWING = """
() => Array.from(document.querySelectorAll('body *')).filter((element) => {
  if (element.closest('.scroll')) return false;
  return element.getBoundingClientRect().right > document.documentElement.clientWidth + 1;
}).slice(0, 5).map((element) => element.tagName + '.' + element.getAttribute('class') + ' ' + Math.round(element.getBoundingClientRect().right))
"""


def keyboard_walk(page, count):
    """Tabs through the page from its top until every control was focused (a date field takes a Tab per part,
    so up to 12 per control); returns the probe indices focused."""
    page.evaluate("() => { document.activeElement && document.activeElement.blur(); window.scrollTo(0, 0); }")
    reached = set()
    for _ in range(count * 12 + 10):
        page.keyboard.press("Tab")
        probe = page.evaluate("() => document.activeElement ? document.activeElement.getAttribute('data-probe') : null")
        if probe is not None:
            reached.add(int(probe))
        if len(reached) == count:
            break
    return reached


def visit(page, name, url, width, artifacts, errors):
    errors.clear()
    response = page.goto(url, wait_until="load")
    controls = page.evaluate(TAG_CONTROLS)
    reached = set(keyboard_walk(page, len(controls)))
    screenshot = f"{artifacts}/{name}-{width}.png"
    page.screenshot(path=screenshot, full_page=True)
    return {
        "page": name,
        "width": width,
        "status": response.status if response else None,
        "url": page.url,
        "consoleErrors": list(errors),
        "text": page.inner_text("main"),
        "title": page.title(),
        "controls": len(controls),
        "unreached": [label for index, label in enumerate(controls) if index not in reached],
        "unlabelled": page.evaluate(UNLABELLED),
        "horizontalOverflow": page.evaluate(
            "() => document.documentElement.scrollWidth > document.documentElement.clientWidth + 1"),
        "overflowing": page.evaluate(OVERFLOWING),
        "screenshot": screenshot,
    }


def main():
    request = json.load(sys.stdin)
    base = request["base"]
    report = {"pages": []}
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=request["chromium"], args=["--no-sandbox"])
        for width, (x, y) in WIDTHS.items():
            context = browser.new_context(viewport={"width": x, "height": y})
            page = context.new_page()
            errors = []
            page.on("console", lambda message: errors.append(message.text) if message.type == "error" else None)
            page.on("pageerror", lambda error: errors.append(str(error)))
            report["pages"].append(visit(page, "sign-in", base + "/console/sign-in", width, request["artifacts"], errors))
            # Sign in through the form, as a person would: by keyboard, Enter submits.
            page.fill("#key", request["key"])
            page.fill("#purpose", request["purpose"])
            with page.expect_navigation(url="**/console/dashboard"):
                page.press("#purpose", "Enter")
            report.setdefault("signedIn", {})[width] = page.url
            if width == "wide":
                storage = page.evaluate("() => [localStorage.length, sessionStorage.length, document.cookie]")
                report["browserStorage"] = storage
            dashboard = visit(page, "dashboard", base + "/console/dashboard", width, request["artifacts"], errors)
            dashboard["codes"] = {
                status: page.inner_text(f'#codes-now dd[data-status="{status}"]')
                for status in ["green", "yellow", "red", "total"]
            }
            report["pages"].append(dashboard)
            person = base + "/console/people?subject=" + request["subject"]
            report["pages"].append(visit(page, "person", person, width, request["artifacts"], errors))
            report["pages"].append(visit(page, "proposals", base + "/console/proposals", width, request["artifacts"], errors))
            proposal = f"{base}/console/proposals/{request['proposal']}"
            report["pages"].append(visit(page, "proposal", proposal, width, request["artifacts"], errors))
            if width == "narrow":
                # The approval, by keyboard: focus the button, press Enter.
                page.focus('button[value="approve"]')
                with page.expect_navigation():
                    page.keyboard.press("Enter")
                report["approval"] = {"url": page.url, "text": page.inner_text("main")}
                # Sign out: the session ends, the next page asks to sign in again.
                with page.expect_navigation():
                    page.click("header button")
                after = page.goto(base + "/console/dashboard")
                report["afterSignOut"] = {"url": page.url, "status": after.status if after else None}
            context.close()
        browser.close()
    json.dump(report, sys.stdout)


if __name__ == "__main__":
    main()

# Debian's Chromium for the browser test of the HTML report (no browser download is possible
# on the CI machines: Playwright drives this one through its `executable_path`).
#
#     source .ci/browser.sh        # exports P2PMARKET_CHROMIUM and P2PMARKET_REQUIRE_BROWSER=1
#
# Installs Debian's `chromium` package when no chromium binary is found. Nothing is started
# here: each test starts its own headless browser and closes it.

_p2pm_browser_main() {
    local bin
    bin="$(command -v chromium || command -v chromium-browser || true)"
    if [ -z "$bin" ]; then
        echo "browser.sh: installing Debian's chromium package" >&2
        DEBIAN_FRONTEND=noninteractive apt-get update -qq >/dev/null
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
        bin="$(command -v chromium || true)"
        if [ -z "$bin" ]; then
            echo "browser.sh: no chromium after installing the package" >&2
            return 1
        fi
    fi
    P2PMARKET_CHROMIUM="$bin"
    P2PMARKET_REQUIRE_BROWSER=1
    export P2PMARKET_CHROMIUM P2PMARKET_REQUIRE_BROWSER
    echo "browser.sh: $("$bin" --version 2>/dev/null | head -n 1) at $bin"
}

_p2pm_browser_main
_p2pm_browser_status=$?
unset -f _p2pm_browser_main
# shellcheck disable=SC2317
return "$_p2pm_browser_status" 2>/dev/null || exit "$_p2pm_browser_status"

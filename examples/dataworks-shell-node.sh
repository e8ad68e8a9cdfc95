#!/bin/bash
# A DataWorks Shell node that gates a schedule: make it the upstream of the nodes that call the model, on the same
# Serverless resource group, so they run only when the model answers from that group's network. Install
# dw-preflight in the resource group's image (or a custom environment), put preflight.yaml beside this script, and
# give the node the keys as environment variables (or read them from a secret store here).
# Exit codes of `preflight run`: 0 no failure, 1 a check failed, 2 usage or config error, 3 the tool broke. This
# node fails on any of 1-3, so DataWorks does not run the downstream nodes, and its log names what failed.
set -u

PREFLIGHT=${PREFLIGHT:-preflight}
CONFIG=${PREFLIGHT_CONFIG:-preflight.yaml}
WAIT=${PREFLIGHT_WAIT:-10m}
REPORTS=${PREFLIGHT_REPORTS:-./preflight-reports}

"$PREFLIGHT" run -c "$CONFIG" --wait "$WAIT" --interval 30 --report-dir "$REPORTS"
code=$?

# The JUnit report lists each failed check with its fix: print them into the node's log, where the on-call looks.
if [ -f "$REPORTS/junit.xml" ]; then
  python3 - "$REPORTS/junit.xml" <<'PY'
import sys
import xml.etree.ElementTree as ET

root = ET.parse(sys.argv[1]).getroot()
print(f"preflight: {root.get('tests')} checks, {root.get('failures')} failed, {root.get('errors')} broke, "
      f"{root.get('skipped')} skipped or waived")
for case in root.iter("testcase"):
    for verdict in ("failure", "error"):
        found = case.find(verdict)
        if found is not None:
            print(f"  {verdict.upper()} {case.get('classname')} {case.get('name')}: {found.get('message')}")
PY
fi

case $code in
  0) echo "preflight: the model services are ready; the schedule may run" ;;
  1) echo "preflight: a check failed; the downstream nodes will not run" ;;
  2) echo "preflight: $CONFIG or the command line is wrong (the message above names file, line and field)" ;;
  3) echo "preflight: dw-preflight itself broke; run 'preflight bundle' and attach the zip to a bug report" ;;
  *) echo "preflight: exited $code" ;;
esac
exit $code

#!/usr/bin/env bash
# Runs the cosa pipeline of cosa-jobs.yaml: build, fan out, finalize, each step after the last one
# completed. Usage: run.sh IMAGE [BUILD_ID]   (BUILD_ID default: <major>.<yyyymmdd>.<hhmm>)
set -euo pipefail
image=${1:?usage: run.sh IMAGE [BUILD_ID]}
id=${2:-1.$(date -u +%Y%m%d).$(date -u +%H%M)}
dns=$(echo "$id" | tr '.' '-')
here=$(cd "$(dirname "$0")" && pwd)
docs=$(sed -e "s|@COSA_IMAGE@|$image|g" -e "s|@BUILD_ID_DNS@|$dns|g" -e "s|@BUILD_ID@|$id|g" "$here/cosa-jobs.yaml")
# Split the three documents: each Job starts only when the one before it completed.
for step in build extend finalize; do
  echo "$docs" | awk -v want="cosa-$step-$dns" 'BEGIN{RS="\n---\n"} index($0, "name: " want) {print}' | kubectl apply -f -
  kubectl wait --for=condition=complete --timeout=3h "job/cosa-$step-$dns"
done
echo "build $id: done"

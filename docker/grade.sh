#!/bin/sh
# Grade SUBMISSIONS into GRADING_DIR inside the grading image (docker/grading.Dockerfile),
# offline: no network, the course and the submissions read-only, the container's own file
# system read-only, only GRADING_DIR writable (docs/instructor.md, "Grading in a container").
#   usage: docker/grade.sh SUBMISSIONS GRADING_DIR [IMAGE]     (IMAGE: course-grading)
set -eu
[ $# -ge 2 ] || { echo "usage: $0 SUBMISSIONS GRADING_DIR [IMAGE]" >&2; exit 2; }
COURSE=$(cd "$(dirname "$0")/.." && pwd)
SUBMISSIONS=$(cd "$1" && pwd)
mkdir -p "$2"
GRADING_DIR=$(cd "$2" && pwd)
IMAGE=${3:-course-grading}
exec ${DOCKER:-docker} run --rm --network none --read-only --tmpfs /tmp --tmpfs /home/grader:mode=1777 \
    --user "$(id -u):$(id -g)" \
    -v "$COURSE":/course:ro -v "$SUBMISSIONS":/subs:ro -v "$GRADING_DIR":/grading \
    "$IMAGE" make -C /course grade VENV=/opt/venv SUBMISSIONS=/subs GRADING_DIR=/grading UNSAFE=1

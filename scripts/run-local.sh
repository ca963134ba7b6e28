#!/bin/sh
# make run: the serving stack (vlmd + nginx + Redis) is not built yet.
echo "make run: the daemon and the nginx front door are not built yet." >&2
echo "For now, answer one request with build/bin/vlm-run (see README.md)." >&2
exit 1

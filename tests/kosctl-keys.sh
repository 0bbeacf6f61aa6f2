#!/bin/sh
. "${srcdir:-.}/tests/lib.sh"
fail "not written yet"
finish kosctl-keys

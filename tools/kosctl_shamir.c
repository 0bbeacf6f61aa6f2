#include "config.h"

#include "tools/kosctl.h"

int kosctl_cmd_shamir(struct kosctl_ctx *ctx, int argc, char **argv)
{
	(void)ctx;
	(void)argc;
	(void)argv;
	kosctl_err("shamir: not built yet");
	return KOSCTL_FAIL;
}

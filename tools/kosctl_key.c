#include "config.h"

#include "tools/kosctl.h"

int kosctl_cmd_key(struct kosctl_ctx *ctx, int argc, char **argv)
{
	(void)ctx;
	(void)argc;
	(void)argv;
	kosctl_err("key: not built yet");
	return KOSCTL_FAIL;
}

int kosctl_cmd_fsck(struct kosctl_ctx *ctx, int argc, char **argv)
{
	(void)ctx;
	(void)argc;
	(void)argv;
	kosctl_err("fsck: not built yet");
	return KOSCTL_FAIL;
}

/*
 * main: overlaybd-iscsid entry point.  Replaced by the real daemon.
 */
#include <stdio.h>

int main(void)
{
	fprintf(stderr, "overlaybd-iscsid: not built yet\n");
	return 1;
}

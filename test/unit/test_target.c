/*
 * test_target: the identity a target gets from its name (daemon/target.c)
 * is stable and distinct: NAA 5 with our locally administered OUI, and a
 * 16-hex-digit serial.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "daemon/daemon_int.h"

static void test_naa(void **state)
{
	uint64_t a = target_naa("iqn.2026-11.io.overlaybd:disk1");
	uint64_t b = target_naa("iqn.2026-11.io.overlaybd:disk2");

	/* SPC-4 7.8.6.6.4: NAA 5, then the 24-bit OUI. */
	assert_int_equal(a >> 60, 5);
	assert_int_equal((a >> 36) & 0xffffff, 0x0200b5);
	assert_int_equal(b >> 60, 5);
	assert_true(a != b);
	assert_true(a == target_naa("iqn.2026-11.io.overlaybd:disk1"));
}

static void test_serial(void **state)
{
	char a[17], b[17], small[5];

	target_serial("iqn.2026-11.io.overlaybd:disk1", a, sizeof(a));
	target_serial("iqn.2026-11.io.overlaybd:disk2", b, sizeof(b));
	assert_int_equal(strlen(a), 16);
	assert_int_equal(strspn(a, "0123456789abcdef"), 16);
	assert_string_not_equal(a, b);
	target_serial("iqn.2026-11.io.overlaybd:disk1", b, sizeof(b));
	assert_string_equal(a, b);
	/* A short buffer gets whole hex pairs and a terminator. */
	target_serial("iqn.2026-11.io.overlaybd:disk1", small, sizeof(small));
	assert_int_equal(strlen(small), 4);
	assert_memory_equal(small, a, 4);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_naa),
		cmocka_unit_test(test_serial),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}

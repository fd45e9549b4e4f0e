# overlaybd-iscsid: plain make, no configure step.
#   make            build every program into build/bin/
#   make test       install missing Debian packages, build, run every test
#   make check-asan the unit and integration tests under ASan + UBSan
#   make bench      benchmarks against tgt and the raw file, same run
#   make soak      the long load and soak test (a short one runs in make test)
#   make run        demo daemon on 127.0.0.1 with a small image
#   make install    programs, systemd unit and /etc defaults

PREFIX ?= /usr/local
DESTDIR ?=
BUILD ?= build
CC ?= gcc
OPT ?= -O2 -g
SAN ?=

CPPFLAGS += -I. -D_GNU_SOURCE
CFLAGS += $(OPT) -std=gnu11 -Wall -Wextra -Werror -Wshadow -Wno-unused-parameter \
	-fno-strict-aliasing -pthread -MMD -MP $(SAN)
LDFLAGS += -pthread $(SAN)
LDLIBS = -lev -lcurl -lcrypto -ljansson -laio -llz4 -lzstd -lsystemd -lext2fs -lcom_err -lrt -lm

LIB_DIRS = common blockdev extfs scsi iscsi registry cache daemon
LIB_SRCS = $(filter-out daemon/main.c,$(wildcard $(addsuffix /*.c,$(LIB_DIRS))))
LIB_OBJS = $(LIB_SRCS:%.c=$(BUILD)/obj/%.o)
LIB = $(BUILD)/libobd.a

TOOL_SRCS = $(wildcard tools/*.c)
TOOLS = $(TOOL_SRCS:tools/%.c=$(BUILD)/bin/%)
DAEMON = $(BUILD)/bin/overlaybd-iscsid

UNIT_SRCS = $(wildcard test/unit/test_*.c)
UNITS = $(UNIT_SRCS:test/unit/%.c=$(BUILD)/test/%)
TESTBIN_SRCS = $(wildcard test/bin/*.c)
TESTBINS = $(TESTBIN_SRCS:test/bin/%.c=$(BUILD)/test/%)
BENCH_SRCS = $(wildcard bench/*.c)
BENCHES = $(BENCH_SRCS:bench/%.c=$(BUILD)/bench/%)

.PHONY: all deps test unit integration check-asan fuzz bench bench-wan bench-coldstart soak run e2e install clean

all: $(DAEMON) $(TOOLS) $(TESTBINS) $(BENCHES)

# The libiscsi clients include <iscsi/iscsi.h>, which -I. would resolve to our own header.
$(BUILD)/obj/test/bin/%.o $(BUILD)/obj/bench/%.o: CPPFLAGS := -iquote . -D_GNU_SOURCE

$(BUILD)/obj/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) $(CFLAGS) -c -o $@ $<

$(LIB): $(LIB_OBJS)
	@mkdir -p $(dir $@)
	rm -f $@
	ar rcs $@ $^

$(DAEMON): $(BUILD)/obj/daemon/main.o $(LIB)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

$(BUILD)/bin/%: $(BUILD)/obj/tools/%.o $(LIB)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

$(BUILD)/test/test_%: $(BUILD)/obj/test/unit/test_%.o $(LIB)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $^ -lcmocka $(LDLIBS)

$(BUILD)/test/%: $(BUILD)/obj/test/bin/%.o $(LIB)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $^ -liscsi $(LDLIBS)

$(BUILD)/bench/%: $(BUILD)/obj/bench/%.o $(LIB)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $^ -liscsi $(LDLIBS)

deps:
	@test/install-deps.sh

unit: all $(UNITS)
	@test/run-unit.sh $(BUILD)

integration: all
	@BUILD=$(BUILD) test/run-integration.sh

test: deps
	$(MAKE) all
	$(MAKE) unit
	$(MAKE) integration
	$(MAKE) check-asan
	$(MAKE) fuzz

check-asan:
	$(MAKE) BUILD=build-asan OPT="-O1 -g -fno-omit-frame-pointer" \
		SAN="-fsanitize=address,undefined -fno-sanitize-recover=undefined" all unit integration

fuzz:
	@test/fuzz/run.sh

bench: all
	@bench/run.sh
	@BUILD=$(BUILD) bench/registry.sh

bench-wan: all
	@BUILD=$(BUILD) bench/wan.sh

bench-coldstart: all
	@test/install-deps.sh coldstart
	@BUILD=$(BUILD) bench/coldstart.sh

soak: all
	@BUILD=$(BUILD) test/soak.sh

run: deps
	$(MAKE) all
	@daemon/demo.sh

e2e: all
	@test/e2e.sh

install: all
	install -d $(DESTDIR)$(PREFIX)/bin $(DESTDIR)/etc/overlaybd $(DESTDIR)/lib/systemd/system
	install -m 0755 $(DAEMON) $(TOOLS) $(DESTDIR)$(PREFIX)/bin/
	test -e $(DESTDIR)/etc/overlaybd/overlaybd-iscsid.json || \
		install -m 0644 etc/overlaybd-iscsid.json $(DESTDIR)/etc/overlaybd/
	sed 's|@BINDIR@|$(PREFIX)/bin|g' systemd/overlaybd-iscsid.service > \
		$(DESTDIR)/lib/systemd/system/overlaybd-iscsid.service

clean:
	rm -rf build build-asan build-fuzz

-include $(shell find $(BUILD)/obj -name '*.d' 2>/dev/null)

# libvmmcompat.so: the interposer preloaded into legacy 13.1 bhyve.
# Included by native-bindings/Makefile; builds into build/ and build/asan/.
# The top-level Makefile also runs it alone ("make -f shim/shim.mk
# build/libvmmcompat.so") with FreeBSD's make, for the installed library: keep
# the rules up to that target readable by both makes. CFLAGS and LDFLAGS (a
# port's) are added to that build.
SHIM_SRCS=	shim/interpose.c shim/session.c shim/daemon_link.c shim/kernel.c \
		shim/plan.c shim/parker.c shim/handover.c shim/translate.c \
		shim/kabi.c shim/memseg.c shim/refusal.c shim/generation.c shim/log.c \
		shim/coalesce.c
SHIM_HDRS=	shim/shim.h shim/vcpuset.h include/vmm13.h include/vmm_abi_gen.h include/fbsd_compat.h \
		include/vmm_compat_proto_gen.h
SHIM_CFLAGS=	-std=gnu11 -Wall -Wextra -Werror -fPIC -Iinclude -Ishim -pthread \
		-fvisibility=hidden
SHIM_LDFLAGS=	-shared -pthread -ldl -flto=auto
# The reading of the daemon's replies, in a file of its own so that the fuzzer
# (fuzz/fuzz.mk) links it alone.
SHIM_SRCS+=	shim/daemon_reply.c

build/libvmmcompat.so: $(SHIM_SRCS) $(SHIM_HDRS)
	@mkdir -p build
	$(CC) $(SHIM_CFLAGS) -O2 -flto=auto $(CFLAGS) -o $@ $(SHIM_SRCS) $(SHIM_LDFLAGS) $(LDFLAGS)

build/asan/libvmmcompat.so: $(SHIM_SRCS) $(SHIM_HDRS)
	@mkdir -p build/asan
	$(CC) $(SHIM_CFLAGS) -O1 -g -fno-omit-frame-pointer \
	    -fsanitize=address,undefined -fno-sanitize-recover=undefined \
	    -o $@ $(SHIM_SRCS) $(SHIM_LDFLAGS) -fsanitize=address,undefined

# The pass-through benchmark's loop (bench/run.ts runs it with and without the interposer).
build/bench/passthrough: bench/passthrough.c include/vmm13.h include/vmm_abi_gen.h
	@mkdir -p build/bench
	$(CC) -std=gnu11 -Wall -Wextra -Werror -O2 -Iinclude -o $@ bench/passthrough.c

ALL_TARGETS	+= build/bench/passthrough

# The two floors the benchmark measures the interposer against (never installed): a tail jump
# to the next ioctl, and a call that tests VM_RUN's exit code. Same compiler flags as the shim.
build/bench/libfloor_tailjump.so: bench/floor_tailjump.c
	@mkdir -p build/bench
	$(CC) $(SHIM_CFLAGS) -O2 -shared -o $@ bench/floor_tailjump.c -ldl

build/bench/libfloor_calltest.so: bench/floor_calltest.c include/vmm13.h include/vmm_abi_gen.h
	@mkdir -p build/bench
	$(CC) $(SHIM_CFLAGS) -O2 -shared -o $@ bench/floor_calltest.c -ldl

ALL_TARGETS	+= build/bench/libfloor_tailjump.so build/bench/libfloor_calltest.so

# Bad input against the interposer (test/native/interposer.test.ts runs it sanitized).
build/shim-tests/bad_input: shim/tests/bad_input.c include/vmm13.h include/vmm_abi_gen.h
	@mkdir -p build/shim-tests
	$(CC) -std=gnu11 -Wall -Wextra -Werror -O1 -g -Iinclude -o $@ shim/tests/bad_input.c

ALL_TARGETS	+= build/shim-tests/bad_input

# 13.1 memory-segment requests through the interposer (test/native/memseg.test.ts).
build/shim-tests/memseg_input: shim/tests/memseg_input.c include/vmm13.h include/vmm_abi_gen.h
	@mkdir -p build/shim-tests
	$(CC) -std=gnu11 -Wall -Wextra -Werror -O1 -g -Iinclude -o $@ shim/tests/memseg_input.c

ALL_TARGETS	+= build/shim-tests/memseg_input

# The compat protocol's layout, generated from src/daemon/protocol.ts (npm run build).
PROTO_GENERATOR	:= ../dist/src/daemon/gen-protocol-header.js
include/vmm_compat_proto_gen.h: $(wildcard $(PROTO_GENERATOR))
	@if [ ! -f $(PROTO_GENERATOR) ]; then \
		echo "$@ is missing and $(PROTO_GENERATOR) is not built:" \
		    "run 'npm run build' (or npx tsc) first" >&2; exit 1; fi
	$(NODE) $(PROTO_GENERATOR) $@

# The vCPU sets at 256 vCPUs (test/native/interposer.test.ts runs it), sanitized.
build/shim-tests/vcpuset_test: shim/tests/vcpuset_test.c shim/vcpuset.h include/vmm_abi_gen.h
	@mkdir -p build/shim-tests
	$(CC) -std=gnu11 -Wall -Wextra -Werror -O1 -g -Iinclude -Ishim \
	    -fsanitize=address,undefined -fno-sanitize-recover=undefined \
	    -o $@ shim/tests/vcpuset_test.c

ALL_TARGETS	+= build/shim-tests/vcpuset_test

# Programs with a FreeBSD ABI tag of 14.3 and 13.1 (test/native/abi-tag.test.ts).
build/shim-tests/abi_tag_open_1403000 build/shim-tests/abi_tag_open_1301000: shim/tests/abi_tag_open.c lab/abi_tag.c
	@mkdir -p build/shim-tests
	$(CC) -std=gnu11 -Wall -Wextra -Werror -O1 -g -DABI_TAG=$(@:build/shim-tests/abi_tag_open_%=%) \
	    -o $@ shim/tests/abi_tag_open.c lab/abi_tag.c

ALL_TARGETS	+= build/shim-tests/abi_tag_open_1403000 build/shim-tests/abi_tag_open_1301000

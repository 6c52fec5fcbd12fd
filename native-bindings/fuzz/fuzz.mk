# Fuzz targets (docs/fuzzing.md). Included by native-bindings/Makefile (GNU make).
#
#   build/asan/fuzz/replay-TARGET  the target under a plain main (fuzz/replay_main.c),
#                                  $(CC) with ASan+UBSan: part of "make asan", so npm test
#                                  replays the corpus with gcc where clang is missing
#   build/fuzz/TARGET              libFuzzer binary (clang -fsanitize=fuzzer,address,undefined):
#                                  "make fuzz", run by npm run fuzz
#   build/fuzz/coverage-TARGET     the replay main with clang's source-based coverage: npm run
#                                  fuzz replays the corpus with it for the coverage figures
#
# Each target links the product's decoder and nothing that interposes libc.

FUZZ_CC		?= clang
FUZZ_CFLAGS	:= -std=gnu11 -Wall -Wextra -Werror -O1 -g -fno-omit-frame-pointer \
		   -Iinclude -Ishim -Ilab
FUZZ_TARGETS	:= daemon-reply bridge-reply
FUZZ_SRCS_daemon-reply	:= fuzz/fuzz_daemon_reply.c shim/daemon_reply.c
FUZZ_SRCS_bridge-reply	:= fuzz/fuzz_bridge_reply.c lab/bridge_reply.c lab/bridge_frame.c
# Replay only: the test that a crashing input fails the replay.
FUZZ_SRCS_planted-overflow := fuzz/planted_overflow.c
FUZZ_HDRS	:= shim/shim.h lab/bridge.h include/vmm13.h include/vmm_abi_gen.h \
		   include/vmm_compat_proto_gen.h

define fuzz_rules
$(ASAN_BUILD)/fuzz/replay-$(1): fuzz/replay_main.c $(FUZZ_SRCS_$(1)) $(FUZZ_HDRS)
	@mkdir -p $$(dir $$@)
	$$(CC) $(FUZZ_CFLAGS) $(SAN_FLAGS) -o $$@ fuzz/replay_main.c $(FUZZ_SRCS_$(1))

$(BUILD)/fuzz/coverage-$(1): fuzz/replay_main.c $(FUZZ_SRCS_$(1)) $(FUZZ_HDRS)
	@mkdir -p $$(dir $$@)
	$$(FUZZ_CC) $(FUZZ_CFLAGS) -O0 -fprofile-instr-generate -fcoverage-mapping \
	    -o $$@ fuzz/replay_main.c $(FUZZ_SRCS_$(1))

$(BUILD)/fuzz/$(1): $(FUZZ_SRCS_$(1)) $(FUZZ_HDRS)
	@mkdir -p $$(dir $$@)
	$$(FUZZ_CC) $(FUZZ_CFLAGS) -fsanitize=fuzzer,address,undefined \
	    -fno-sanitize-recover=undefined -o $$@ $(FUZZ_SRCS_$(1))
endef

$(foreach t,$(FUZZ_TARGETS) planted-overflow,$(eval $(call fuzz_rules,$(t))))

ASAN_TARGETS	+= $(addprefix $(ASAN_BUILD)/fuzz/replay-,$(FUZZ_TARGETS) planted-overflow)

.PHONY: fuzz
fuzz: $(addprefix $(BUILD)/fuzz/,$(FUZZ_TARGETS) $(addprefix coverage-,$(FUZZ_TARGETS)))

# The fixed behaviour behind each regress-* input of the corpus, sanitized
# (test/fuzz/replay.test.ts runs it).
$(ASAN_BUILD)/fuzz/daemon_reply_test: fuzz/tests/daemon_reply_test.c shim/daemon_reply.c $(FUZZ_HDRS)
	@mkdir -p $(dir $@)
	$(CC) $(FUZZ_CFLAGS) -Itests $(SAN_FLAGS) -o $@ fuzz/tests/daemon_reply_test.c shim/daemon_reply.c

ASAN_TARGETS	+= $(ASAN_BUILD)/fuzz/daemon_reply_test

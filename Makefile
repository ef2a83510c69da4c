# vgcollector: one GNU Makefile for the collector, libvgsink, tools, tests and benchmarks.
# `make` builds everything; `make run` and `make test` are the two commands of the README.

BUILD     ?= build
PREFIX    ?= /usr/local
DESTDIR   ?=
CC        ?= cc
# build/san is the ASan+UBSan build `make test` runs; naming it is enough.
ifeq ($(BUILD),build/san)
SANITIZE  ?= address,undefined
CFLAGS    ?= -O1 -g
endif
SANITIZE  ?=
VERSION   := 0.1.0
PYTHON    ?= /usr/bin/python3
# `make install INSTALL_PYTHON=1` also puts the vgsink package here (Debian's
# interpreter reads PREFIX/lib/python3/dist-packages); it finds libvgsink.so.0
# in PREFIX/lib, beside it.
PYTHON_SITE ?= $(PREFIX)/lib/python3/dist-packages

PKGS      := libevent libevent_openssl libevent_pthreads libpq libcjson zlib openssl libprotobuf-c
PKG_CFLAGS := $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
PKG_LIBS   := $(shell pkg-config --libs $(PKGS) 2>/dev/null)

WARN      := -Wall -Wextra -Wformat=2 -Wmissing-prototypes -Wstrict-prototypes \
             -Wshadow -Wwrite-strings -Wundef -Wpointer-arith -Wcast-align \
             -Wno-unused-parameter -Werror
CFLAGS    ?= -O2 -g
ALL_CFLAGS := -std=c11 -D_GNU_SOURCE -fPIC -pthread $(WARN) $(CFLAGS) \
              -DVGC_VERSION='"$(VERSION)"' -Icommon -Icollector -Isink -I$(BUILD) \
              $(PKG_CFLAGS) -MMD -MP
LDLIBS    := $(PKG_LIBS) -lm -pthread

ifneq ($(SANITIZE),)
ALL_CFLAGS += -fsanitize=$(SANITIZE) -fno-omit-frame-pointer -fno-sanitize-recover=all
LDFLAGS    += -fsanitize=$(SANITIZE)
endif

ifeq ($(V),1)
Q :=
else
Q := @
endif

COMMON_SRC    := $(wildcard common/*.c)
COLLECTOR_SRC := $(wildcard collector/*.c)
SINK_SRC      := $(wildcard sink/*.c)
SCHEMA_SQL    := $(sort $(wildcard schema/*.sql))
WEB_SRC       := $(sort $(wildcard collector/web/*))

COMMON_OBJ    := $(COMMON_SRC:%.c=$(BUILD)/obj/%.o)
COLLECTOR_OBJ := $(COLLECTOR_SRC:%.c=$(BUILD)/obj/%.o) $(BUILD)/obj/schema_embed.o \
                 $(BUILD)/obj/web_embed.o $(BUILD)/obj/otlp_trace.pb-c.o
SINK_OBJ      := $(SINK_SRC:%.c=$(BUILD)/obj/%.o)
# The collector binary holds everything but main() in a static archive so that
# unit tests and the fuzz target link the same code the daemon runs.
COLLECTOR_LIB_OBJ := $(filter-out $(BUILD)/obj/collector/main.o,$(COLLECTOR_OBJ))

TOOLS_SRC     := $(wildcard tests/tools/*.c)
TOOLS         := $(TOOLS_SRC:tests/tools/%.c=$(BUILD)/%)
# Operators' tools (sink/tools/): built by `all`, installed by `make install`.
SINK_TOOLS_SRC := $(wildcard sink/tools/*.c)
SINK_TOOLS    := $(SINK_TOOLS_SRC:sink/tools/%.c=$(BUILD)/%)
UNIT_SRC      := $(wildcard tests/unit/*.c)
UNIT_OBJ      := $(UNIT_SRC:%.c=$(BUILD)/obj/%.o)

.PHONY: all run test check-layers test-unit test-integration test-san fuzz fuzz-run install clean \
        bench-ingest bench-ingest-steps bench-rating bench-fold bench-sink bench-rollup bench-pooled bench-budgets bench-otlp bench-roster bench-size \
        test-scale test-ha deps format format-check

# libvgsink and the tools that link it are built once sink/ has sources.
SINK_TARGETS := $(if $(SINK_SRC),$(BUILD)/libvgsink.a $(BUILD)/libvgsink.so.0 $(BUILD)/libvgsink.so \
                  $(BUILD)/vgsink.pc $(TOOLS) $(SINK_TOOLS))
SINK_ARCHIVE := $(if $(SINK_SRC),$(BUILD)/libvgsink.a)

# The Python package (sink/python) laid out in $(BUILD)/python as installed:
# its modules, the C hot path vgsink._fast (when python3-dev is there) and
# libvgsink.so.0 beside it. Tests put $(BUILD)/python on sys.path.
PY_EXT     := $(shell $(PYTHON) -c 'import sysconfig; print(sysconfig.get_config_var("EXT_SUFFIX"))' 2>/dev/null)
PY_INCLUDE := $(shell $(PYTHON) -c 'import sysconfig; print(sysconfig.get_paths()["include"])' 2>/dev/null)
PY_PKG     := $(BUILD)/python/vgsink
PY_MODS    := $(patsubst sink/python/vgsink/%,$(PY_PKG)/%,$(wildcard sink/python/vgsink/*.py))
PY_TARGETS := $(if $(SINK_SRC),$(PY_MODS) $(PY_PKG)/libvgsink.so.0 \
                $(if $(wildcard $(PY_INCLUDE)/Python.h),$(PY_PKG)/_fast$(PY_EXT)))

all: $(BUILD)/vgcollector $(SINK_TARGETS) $(PY_TARGETS) $(BUILD)/unit_tests

$(BUILD)/obj/%.o: %.c
	@mkdir -p $(dir $@)
	@$(if $(Q),echo "  CC      $<")
	$(Q)$(CC) $(ALL_CFLAGS) -c -o $@ $<

# Migrations are embedded in the binary so `migrate` and the schema check in
# `serve` need no files at run time; schema/*.sql stays the only source.
# The embedded files' names, rewritten only when the list changes, so that
# removing a migration or a web asset regenerates what embeds them.
$(BUILD)/schema.list $(BUILD)/web.list: FORCE
	@mkdir -p $(dir $@)
	$(Q)echo $(if $(findstring schema,$@),$(SCHEMA_SQL),$(WEB_SRC)) | cmp -s - $@ || \
	  echo $(if $(findstring schema,$@),$(SCHEMA_SQL),$(WEB_SRC)) > $@

FORCE:

$(BUILD)/schema_embed.c: $(SCHEMA_SQL) $(BUILD)/schema.list Makefile
	@mkdir -p $(dir $@)
	@$(if $(Q),echo "  EMBED   schema/*.sql")
	$(Q){ echo '/* Generated from the files in schema/ by the Makefile: do not edit. */'; \
	  echo '#include "migrate.h"'; \
	  echo 'const struct migration migrations[] = {'; \
	  for f in $(SCHEMA_SQL); do \
	    printf '  { "%s", ' "$$(basename $$f .sql)"; \
	    od -An -v -tx1 $$f | tr -s ' \n' ' ' | sed -e 's/^ //' -e 's/ $$//' -e 's/\([0-9a-f][0-9a-f]\)/"\\x\1"/g' -e 's/" "//g'; \
	    echo ' },'; \
	  done; \
	  echo '};'; \
	  echo 'const int migrations_count = (int)(sizeof(migrations) / sizeof(migrations[0]));'; \
	} > $@

$(BUILD)/obj/schema_embed.o: $(BUILD)/schema_embed.c
	@mkdir -p $(dir $@)
	$(Q)$(CC) $(ALL_CFLAGS) -Wno-overlength-strings -c -o $@ $<

# The OTLP trace messages the collector reads, generated from our own subset of
# the OTLP .proto (collector/proto/) by protoc-c into $(BUILD).
OTLP_PROTO := collector/proto/otlp_trace.proto
$(BUILD)/otlp_trace.pb-c.c $(BUILD)/otlp_trace.pb-c.h &: $(OTLP_PROTO)
	@mkdir -p $(BUILD)
	@$(if $(Q),echo "  PROTOC  $<")
	$(Q)protoc-c --proto_path=collector/proto --c_out=$(BUILD) $<

$(BUILD)/obj/otlp_trace.pb-c.o: $(BUILD)/otlp_trace.pb-c.c
	@mkdir -p $(dir $@)
	$(Q)$(CC) $(ALL_CFLAGS) -Wno-missing-prototypes -Wno-cast-align -c -o $@ $<

$(BUILD)/obj/collector/ingest_otlp.o $(BUILD)/obj/collector/ingest.o: $(BUILD)/otlp_trace.pb-c.h

# The dashboard (collector/web/) is embedded the same way. In the HTML each
# asset URL gets ?v=<its content hash>, so assets can be cached for a year and
# an upgrade still loads the new ones (the HTML is revalidated every time).
# Each file is also stored gzipped (gzip -9n) and its hash is its ETag.
$(BUILD)/web_embed.c: $(WEB_SRC) $(BUILD)/web.list Makefile
	@mkdir -p $(BUILD)/web
	@$(if $(Q),echo "  EMBED   collector/web/*")
	$(Q)set -ef; sub=; \
	for f in $(WEB_SRC); do n=$$(basename $$f); case $$n in *.html) ;; *) \
	  h=$$(sha256sum $$f | cut -c1-16); sub="$$sub -e s|/ui/$$n\"|/ui/$$n?v=$$h\"|g";; esac; done; \
	for f in $(WEB_SRC); do n=$$(basename $$f); case $$n in \
	  *.html) sed $$sub $$f > $(BUILD)/web/$$n ;; *) cp $$f $(BUILD)/web/$$n ;; esac; \
	  gzip -9nc $(BUILD)/web/$$n > $(BUILD)/web/$$n.gz; done; \
	{ echo '/* Generated from the files in collector/web/ by the Makefile: do not edit. */'; \
	  echo '#include "web.h"'; i=0; \
	  for f in $(WEB_SRC); do n=$$(basename $$f); \
	    for v in d:$$n z:$$n.gz; do \
	      printf 'static const char web_%s%d[] = ' $${v%%:*} $$i; \
	      od -An -v -tx1 $(BUILD)/web/$${v#*:} | tr -s ' \n' ' ' | sed -e 's/^ //' -e 's/ $$//' -e 's/\([0-9a-f][0-9a-f]\)/"\\x\1"/g' -e 's/" "//g'; \
	      echo ';'; \
	    done; i=$$((i + 1)); \
	  done; \
	  echo 'const struct web_file web_files[] = {'; i=0; \
	  for f in $(WEB_SRC); do n=$$(basename $$f); h=$$(sha256sum $(BUILD)/web/$$n | cut -c1-16); \
	    printf '  { "%s", web_d%d, sizeof(web_d%d) - 1, web_z%d, sizeof(web_z%d) - 1, "%s" },\n' \
	      $$n $$i $$i $$i $$i $$h; i=$$((i + 1)); \
	  done; \
	  echo '};'; \
	  echo 'const int web_files_count = (int)(sizeof(web_files) / sizeof(web_files[0]));'; \
	} > $@

$(BUILD)/obj/web_embed.o: $(BUILD)/web_embed.c collector/web.h
	@mkdir -p $(dir $@)
	$(Q)$(CC) $(ALL_CFLAGS) -Wno-overlength-strings -c -o $@ $<

$(BUILD)/libvgcollector.a: $(COLLECTOR_LIB_OBJ) $(COMMON_OBJ)
	$(Q)rm -f $@ && ar rcs $@ $^

$(BUILD)/vgcollector: $(BUILD)/obj/collector/main.o $(BUILD)/libvgcollector.a
	@$(if $(Q),echo "  LD      $@")
	$(Q)$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

$(BUILD)/libvgsink.a: $(SINK_OBJ) $(COMMON_OBJ)
	@$(if $(Q),echo "  AR      $@")
	$(Q)rm -f $@ && ar rcs $@ $^

# libvgsink.so exports vgsink.h's VGSINK_EXPORT functions and nothing else:
# its objects (sink/ and the common/ code it carries) are compiled with hidden
# visibility. The programs, unit tests and tools link objects or archives
# statically, so they still reach the internals.
$(SINK_OBJ) $(COMMON_OBJ): ALL_CFLAGS += -fvisibility=hidden

# Laid out as `make install` lays it out, so a program linked with -Lbuild
# finds its soname (libvgsink.so.0) at run time with LD_LIBRARY_PATH=build.
$(BUILD)/libvgsink.so.0: $(SINK_OBJ) $(COMMON_OBJ)
	@$(if $(Q),echo "  LD      $@")
	$(Q)$(CC) $(LDFLAGS) -shared -Wl,-soname,libvgsink.so.0 -o $@ $^ $(LDLIBS)

$(BUILD)/libvgsink.so: $(BUILD)/libvgsink.so.0
	$(Q)ln -sfn libvgsink.so.0 $@

$(PY_PKG)/%.py: sink/python/vgsink/%.py
	@mkdir -p $(@D)
	$(Q)cp $< $@

$(PY_PKG)/libvgsink.so.0: $(BUILD)/libvgsink.so.0
	@mkdir -p $(@D)
	$(Q)cp $< $@

# Built without the sanitizers: the interpreter that loads it is not.
$(PY_PKG)/_fast$(PY_EXT): sink/python/vgsink/_fast.c sink/vgsink.h
	@mkdir -p $(@D)
	@$(if $(Q),echo "  CC      $@")
	$(Q)$(CC) -std=c11 -D_GNU_SOURCE -O2 -g -fPIC -shared -pthread -Wall -Wextra -Werror \
	  -Wno-unused-parameter -Wno-missing-field-initializers -Isink -I$(PY_INCLUDE) -o $@ $<

$(BUILD)/vgsink.pc: sink/vgsink.pc.in Makefile
	$(Q)sed -e 's|@PREFIX@|$(PREFIX)|g' -e 's|@VERSION@|$(VERSION)|g' $< > $@

# An operator's tool uses libvgsink's API only, linked in statically, so the
# installed binary runs whatever PREFIX/lib holds.
$(BUILD)/%: sink/tools/%.c $(BUILD)/libvgsink.a
	@mkdir -p $(BUILD)/obj/sink/tools
	@$(if $(Q),echo "  LD      $@")
	$(Q)$(CC) $(ALL_CFLAGS) -MF $(BUILD)/obj/sink/tools/$*.d $(LDFLAGS) -o $@ $< $(BUILD)/libvgsink.a $(LDLIBS)

# Test tools (simulators, benchmarks) link libvgsink and the collector code.
$(BUILD)/%: tests/tools/%.c $(BUILD)/libvgsink.a $(BUILD)/libvgcollector.a
	@$(if $(Q),echo "  LD      $@")
	$(Q)$(CC) $(ALL_CFLAGS) $(LDFLAGS) -o $@ $< $(BUILD)/libvgsink.a $(BUILD)/libvgcollector.a $(LDLIBS)

# Unit tests compile one object per file, like the rest, so each gets its own
# -MMD file and an edit to a header under tests/ rebuilds what includes it.
$(UNIT_OBJ): ALL_CFLAGS += -Itests/unit

$(BUILD)/unit_tests: $(UNIT_OBJ) $(BUILD)/libvgcollector.a $(SINK_ARCHIVE)
	@$(if $(Q),echo "  LD      $@")
	$(Q)$(CC) $(LDFLAGS) -o $@ $(UNIT_OBJ) $(SINK_ARCHIVE) $(BUILD)/libvgcollector.a $(LDLIBS)

# ---- the two commands -------------------------------------------------------

deps:
	$(Q)deploy/install-deps.sh

run: deps
	$(Q)$(MAKE) --no-print-directory all
	$(Q)deploy/dev-run.sh

# The whole suite: the layer check (tests/check_layers.py: which directory may
# include which), unit tests, integration tests against real PostgreSQL with
# the normal build, the same again built with ASan+UBSan, then 30 s of fuzzing
# split between the fuzz targets (the JSON ingest and OTLP decoders).
test: deps
	$(Q)$(MAKE) --no-print-directory format-check
	$(Q)$(PYTHON) tests/check_layers.py
	$(Q)$(MAKE) --no-print-directory all
	$(Q)$(MAKE) --no-print-directory BUILD=build/san SANITIZE=address,undefined CFLAGS="-O1 -g" all
	$(Q)$(MAKE) --no-print-directory fuzz
	$(Q)VGC_BUILD=build $(PYTHON) tests/run.py --fuzz-seconds 30

check-layers:
	$(Q)$(PYTHON) tests/check_layers.py

test-unit: all
	$(Q)$(BUILD)/unit_tests

test-integration: all
	$(Q)VGC_BUILD=$(BUILD) $(PYTHON) -m pytest -q --ignore=tests/test_ha.py tests

# haproxy, 3 collectors, pgbouncer (transaction mode), a primary and a streaming
# standby, under faults (tests/test_scale.py, part of `make test` too); then
# losing the primary of a Patroni cluster (tests/test_ha.py, see test-ha).
test-scale: deps all
	$(Q)VGC_BUILD=$(BUILD) $(PYTHON) -m pytest -q -s -p no:cacheprovider tests/test_scale.py \
	  tests/test_ha.py

# etcd and two Patroni nodes (deploy/ha/patroni.yml), two collectors on a
# multi-host conninfo; the leader is SIGKILLed mid-stream, then switched over.
# Prints the failover time and the longest ingest gap. Not in `make test`:
# 65 to 90 s per build, most of it Patroni bootstrapping and its lease running out
# (docs/operations.md, Losing the primary).
test-ha: deps all
	$(Q)VGC_BUILD=$(BUILD) $(PYTHON) -m pytest -q -s -p no:cacheprovider tests/test_ha.py

# ---- fuzzing (clang + libFuzzer from libclang-rt-14-dev) --------------------

FUZZ_CFLAGS := -std=c11 -D_GNU_SOURCE -g -O1 -fsanitize=fuzzer,address,undefined \
               -Icommon -Icollector -I$(BUILD) $(PKG_CFLAGS)
fuzz: $(BUILD)/fuzz_ingest $(BUILD)/fuzz_otlp

# The OTLP decoders, both encodings, and their answers.
$(BUILD)/fuzz_otlp: tests/fuzz/fuzz_otlp.c $(COMMON_SRC) collector/ingest_otlp.c collector/ingest_batch.c \
                    $(BUILD)/otlp_trace.pb-c.c
	@mkdir -p $(BUILD)
	@$(if $(Q),echo "  FUZZ    $@")
	$(Q)clang $(FUZZ_CFLAGS) -o $@ $^ $(PKG_LIBS) -lm

$(BUILD)/fuzz_ingest: tests/fuzz/fuzz_ingest.c $(COMMON_SRC) collector/ingest_json.c collector/ingest_batch.c \
                     collector/ingest_turns.c
	@mkdir -p $(BUILD)
	@$(if $(Q),echo "  FUZZ    $@")
	$(Q)clang $(FUZZ_CFLAGS) -o $@ $^ $(PKG_LIBS) -lm

fuzz-run: fuzz
	$(Q)mkdir -p $(BUILD)/fuzz-corpus && cp -n tests/fuzz/corpus/* $(BUILD)/fuzz-corpus/ 2>/dev/null || true
	$(Q)$(BUILD)/fuzz_ingest -max_total_time=$${FUZZ_SECONDS:-300} -rss_limit_mb=512 $(BUILD)/fuzz-corpus
	$(Q)mkdir -p $(BUILD)/fuzz-corpus-otlp && cp -n tests/fuzz/corpus_otlp/* $(BUILD)/fuzz-corpus-otlp/ 2>/dev/null || true
	$(Q)$(BUILD)/fuzz_otlp -max_total_time=$${FUZZ_SECONDS:-300} -rss_limit_mb=1024 $(BUILD)/fuzz-corpus-otlp

# ---- benchmarks (print figures; never part of `make test`) -------------------

bench-ingest: deps all
	$(Q)VGC_BUILD=$(BUILD) $(PYTHON) tests/bench/bench_ingest.py
	$(Q)VGC_BUILD=$(BUILD) $(PYTHON) tests/bench/bench_pooled.py

# Backend CPU of each step of the ingest transaction, and of the alternatives
# measured for each step.
bench-ingest-steps: deps all
	$(Q)VGC_BUILD=$(BUILD) $(PYTHON) tests/bench/bench_ingest_steps.py

# Backend CPU of the ingest statement per batch, with and without rate card
# rules (BENCH_RATING_OTHER=<build dir> adds another build on the same batches).
bench-rating: deps all
	$(Q)VGC_BUILD=$(BUILD) $(PYTHON) tests/bench/bench_rating.py

# The rollup summariser catching up on a backlog of deltas: deltas per second
# at growing backlogs (a fold's work must follow rollup_fold_max_deltas).
bench-fold: deps all
	$(Q)VGC_BUILD=$(BUILD) $(PYTHON) tests/bench/bench_fold.py

# Ingest direct and through pgbouncer in transaction mode, in the same run.
bench-pooled: deps all
	$(Q)VGC_BUILD=$(BUILD) $(PYTHON) tests/bench/bench_pooled.py

# POST /v1/traces (protobuf OTLP) against POST /v1/ingest on the same rows.
bench-otlp: deps all
	$(Q)VGC_BUILD=$(BUILD) $(PYTHON) tests/bench/bench_otlp.py

bench-sink: deps all
	$(Q)VGC_BUILD=$(BUILD) $(PYTHON) tests/bench/bench_sink.py

bench-rollup: deps all
	$(Q)VGC_BUILD=$(BUILD) $(PYTHON) tests/bench/bench_rollup.py

bench-budgets: deps all
	$(Q)VGC_BUILD=$(BUILD) $(PYTHON) tests/bench/bench_budgets.py

bench-roster: deps all
	$(Q)VGC_BUILD=$(BUILD) $(PYTHON) tests/bench/bench_roster.py

# Bytes per cost row in each table after 1M fleet-mix rows (docs/capacity.md).
bench-size: deps all
	$(Q)VGC_BUILD=$(BUILD) $(PYTHON) tests/bench/bench_size.py

# ---- install -----------------------------------------------------------------

install: all
	install -d $(DESTDIR)$(PREFIX)/bin $(DESTDIR)$(PREFIX)/lib/pkgconfig \
	           $(DESTDIR)$(PREFIX)/include $(DESTDIR)$(PREFIX)/share/vgcollector/schema \
	           $(DESTDIR)/lib/systemd/system $(DESTDIR)/etc/vgcollector
	install -m 0755 $(BUILD)/vgcollector $(DESTDIR)$(PREFIX)/bin/vgcollector
ifneq ($(SINK_SRC),)
	install -m 0644 $(BUILD)/libvgsink.a $(DESTDIR)$(PREFIX)/lib/libvgsink.a
	install -m 0755 $(BUILD)/libvgsink.so.0 $(DESTDIR)$(PREFIX)/lib/libvgsink.so.0
	ln -sf libvgsink.so.0 $(DESTDIR)$(PREFIX)/lib/libvgsink.so
	install -m 0644 sink/vgsink.h $(DESTDIR)$(PREFIX)/include/vgsink.h
	install -m 0644 $(BUILD)/vgsink.pc $(DESTDIR)$(PREFIX)/lib/pkgconfig/vgsink.pc
	install -m 0755 $(SINK_TOOLS) $(DESTDIR)$(PREFIX)/bin/
endif
ifneq ($(INSTALL_PYTHON),)
	$(PYTHON) -m pip install --no-deps --no-index --no-build-isolation --upgrade \
	  --target $(DESTDIR)$(PYTHON_SITE) ./sink/python
endif
	install -m 0644 $(SCHEMA_SQL) $(DESTDIR)$(PREFIX)/share/vgcollector/schema/
	sed -e 's|@PREFIX@|$(PREFIX)|g' deploy/vgcollector.service > $(DESTDIR)/lib/systemd/system/vgcollector.service
	chmod 0644 $(DESTDIR)/lib/systemd/system/vgcollector.service
	sed -e 's|@PREFIX@|$(PREFIX)|g' deploy/vgcollector@.service > $(DESTDIR)/lib/systemd/system/vgcollector@.service
	chmod 0644 $(DESTDIR)/lib/systemd/system/vgcollector@.service
	test -e $(DESTDIR)/etc/vgcollector/vgcollector.conf || \
	  install -m 0640 deploy/vgcollector.conf $(DESTDIR)/etc/vgcollector/vgcollector.conf

FORMAT_SRC := $(wildcard common/*.[ch] collector/*.[ch] sink/*.[ch] sink/python/vgsink/*.c tests/unit/*.[ch] \
	      sink/tools/*.c tests/abi/*.c \
	      tests/tools/*.[ch] tests/fuzz/*.c)

format:
	clang-format -i $(FORMAT_SRC)

# Fails, naming file and line, where the code is not as `make format` leaves it.
format-check:
	$(Q)clang-format --dry-run --Werror $(FORMAT_SRC)

clean:
	rm -rf build sink/python/build sink/python/vgsink.egg-info

# Objects' dependency files, and the tools' (each tool is one source compiled
# and linked in one step, which writes $(BUILD)/<tool>.d).
-include $(shell find $(BUILD)/obj -name '*.d' 2>/dev/null) $(TOOLS:%=%.d)

// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* Never loaded: its skeleton's generated types are the one Rust view of bpf/pyprobe.h (src/abi). */
#include "common.bpf.h"

/*
 * Enums and ring-buffer records appear in no map's type, so nothing would put them in the BTF
 * that libbpf-cargo generates Rust from: this variable names each of them once.
 */
struct type_anchors {
	enum pyprobe_limit limit;
	enum flow_kind flow_kind;
	enum flow_frame_flag flow_frame_flag;
	enum arg_kind arg_kind;
	enum arg_reg arg_reg;
	enum text_encoding text_encoding;
	struct fn_key fn_key;
	struct fn_entry fn_entry;
	struct fn_slot fn_slot;
	struct hist_key hist_key;
	struct wp_key wp_key;
	struct name_filter name_filter;
	struct source_config source_config;
	struct gc_gen_stats gc_gen_stats;
	struct gc_event gc_event;
	struct glob_pattern glob_pattern;
	struct line_key line_key;
	struct line_file line_file;
	struct import_stack import_stack;
	struct import_event import_event;
	struct audit_event audit_event;
	struct audit_decoder audit_decoder;
	struct object_layout object_layout;
	struct flow_event flow_event;
	struct stack_layout stack_layout;
	struct stack_record stack_record;
	struct sample_key sample_key;
	struct agent_hist agent_hist;
	struct agent_gc_key agent_gc_key;
	struct agent_gc_stats agent_gc_stats;
	struct exc_layout exc_layout;
	struct exc_key exc_key;
	struct exc_flight exc_flight;
	struct exc_event exc_event;
} type_anchors = {};

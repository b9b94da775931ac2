// SPDX-License-Identifier: GPL-2.0
/*
 * ktstr-loader: load a SEC(".struct_ops.link") sched_ext scheduler object, attach it, pin
 * the link (so it stays attached after we exit) and report on stdout/stderr.
 *
 *   ktstr-loader OBJ.bpf.o [--pin PATH] [--set NAME=VALUE]...
 *
 * --set writes a global of .rodata/.data/.bss before loading (integers of 1-8 bytes,
 * char arrays as strings); if no global has that NAME, it writes the member NAME of the
 * struct_ops value instead (e.g. timeout_ms). Without --pin the loader stays attached
 * until it gets SIGINT/SIGTERM.
 *
 * Other programs of the object that libbpf can attach by their section (tracing programs,
 * e.g. the test schedulers' tp_btf/sched_switch) are attached first, as a skeleton's
 * attach would, and with --pin their links are pinned at PATH_<program name>.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <bpf/btf.h>
#include <bpf/libbpf.h>

static int print_fn(enum libbpf_print_level level, const char *fmt, va_list args)
{
	if (level == LIBBPF_DEBUG)
		return 0;
	return vfprintf(stderr, fmt, args);
}

/* Write VALUE into SIZE bytes at DST, typed by BTF type ID. */
static int write_value(const struct btf *btf, __u32 type_id, void *dst, size_t size,
		       const char *name, const char *value)
{
	const struct btf_type *t;
	int id = btf__resolve_type(btf, type_id);

	if (id < 0)
		return id;
	t = btf__type_by_id(btf, id);
	if (btf_is_array(t)) {
		const struct btf_array *arr = btf_array(t);
		const struct btf_type *elem = btf__type_by_id(btf, btf__resolve_type(btf, arr->type));

		if (!elem || !btf_is_int(elem) || elem->size != 1) {
			fprintf(stderr, "ktstr-loader: %s is an array of non-chars\n", name);
			return -EINVAL;
		}
		if (strlen(value) >= size) {
			fprintf(stderr, "ktstr-loader: %s: value longer than %zu bytes\n", name, size - 1);
			return -E2BIG;
		}
		memset(dst, 0, size);
		memcpy(dst, value, strlen(value));
		return 0;
	}
	if ((btf_is_int(t) || btf_is_enum(t)) && size >= 1 && size <= 8) {
		char *end;
		unsigned long long v = strtoull(value, &end, 0);

		if (*value == '-')
			v = (unsigned long long)strtoll(value, &end, 0);
		if (*end) {
			fprintf(stderr, "ktstr-loader: %s: %s is not a number\n", name, value);
			return -EINVAL;
		}
		/* little-endian: the low SIZE bytes */
		memcpy(dst, &v, size);
		return 0;
	}
	fprintf(stderr, "ktstr-loader: %s has a type --set cannot write\n", name);
	return -EINVAL;
}

static int set_global(struct bpf_object *obj, const char *name, const char *value)
{
	const struct btf *btf = bpf_object__btf(obj);
	struct bpf_map *map;

	if (!btf)
		return -ENOENT;
	bpf_object__for_each_map(map, obj) {
		const struct btf_type *sec;
		const struct btf_var_secinfo *vs;
		size_t sz;
		char *data;
		int i;

		if (!bpf_map__is_internal(map))
			continue;
		sec = btf__type_by_id(btf, bpf_map__btf_value_type_id(map));
		if (!sec || !btf_is_datasec(sec))
			continue;
		data = bpf_map__initial_value(map, &sz);
		if (!data)
			continue;
		vs = btf_var_secinfos(sec);
		for (i = 0; i < btf_vlen(sec); i++, vs++) {
			const struct btf_type *var = btf__type_by_id(btf, vs->type);

			if (strcmp(btf__name_by_offset(btf, var->name_off), name))
				continue;
			if (vs->offset + vs->size > sz)
				return -EINVAL;
			return write_value(btf, var->type, data + vs->offset, vs->size, name, value);
		}
	}
	return -ENOENT;
}

static int set_ops_member(struct bpf_object *obj, const char *name, const char *value)
{
	const struct btf *btf = bpf_object__btf(obj);
	struct bpf_map *map;

	bpf_object__for_each_map(map, obj) {
		const struct btf_type *t;
		const struct btf_member *m;
		size_t sz;
		char *data;
		int i;

		if (bpf_map__type(map) != BPF_MAP_TYPE_STRUCT_OPS)
			continue;
		t = btf__type_by_id(btf, bpf_map__btf_value_type_id(map));
		data = bpf_map__initial_value(map, &sz);
		if (!t || !data || !btf_is_struct(t))
			continue;
		m = btf_members(t);
		for (i = 0; i < btf_vlen(t); i++, m++) {
			__s64 msz;

			if (strcmp(btf__name_by_offset(btf, m->name_off), name))
				continue;
			msz = btf__resolve_size(btf, m->type);
			if (msz <= 0 || btf_member_bitfield_size(t, i) ||
			    m->offset / 8 + (size_t)msz > sz)
				return -EINVAL;
			return write_value(btf, m->type, data + m->offset / 8, msz, name, value);
		}
	}
	return -ENOENT;
}

static volatile sig_atomic_t stop;
static void on_signal(int sig) { (void)sig; stop = 1; }

int main(int argc, char **argv)
{
	const char *path = NULL, *pin = NULL;
	struct bpf_object *obj;
	struct bpf_program *prog;
	struct bpf_map *map;
	int i, err, attached = 0;

	if (argc < 2) {
		fprintf(stderr, "usage: ktstr-loader OBJ [--pin PATH] [--set NAME=VALUE]...\n");
		return 2;
	}
	libbpf_set_print(print_fn);
	path = argv[1];
	obj = bpf_object__open_file(path, NULL);
	if (!obj) {
		fprintf(stderr, "ktstr-loader: open %s: %s\n", path, strerror(errno));
		return 1;
	}
	for (i = 2; i < argc; i++) {
		if (!strcmp(argv[i], "--pin") && i + 1 < argc) {
			pin = argv[++i];
		} else if (!strcmp(argv[i], "--set") && i + 1 < argc) {
			char *assign = argv[++i], *eq = strchr(assign, '=');

			if (!eq) {
				fprintf(stderr, "ktstr-loader: --set %s: expected NAME=VALUE\n", assign);
				return 2;
			}
			*eq = '\0';
			err = set_global(obj, assign, eq + 1);
			if (err == -ENOENT)
				err = set_ops_member(obj, assign, eq + 1);
			if (err) {
				fprintf(stderr, "ktstr-loader: --set %s: %s\n", assign,
					err == -ENOENT ? "no such global or ops member" : strerror(-err));
				return 2;
			}
			printf("ktstr-loader: set %s=%s\n", assign, eq + 1);
		} else {
			fprintf(stderr, "ktstr-loader: unknown argument %s\n", argv[i]);
			return 2;
		}
	}
	err = bpf_object__load(obj);
	if (err) {
		fprintf(stderr, "ktstr-loader: load %s: %s\n", path, strerror(-err));
		return 1;
	}
	/* Before the scheduler: a program that fails to attach leaves nothing attached. */
	bpf_object__for_each_program(prog, obj) {
		struct bpf_link *link;
		char lpath[4096];

		if (bpf_program__type(prog) == BPF_PROG_TYPE_STRUCT_OPS ||
		    !bpf_program__autoload(prog) || !bpf_program__autoattach(prog))
			continue;
		link = bpf_program__attach(prog);
		if (!link) {
			fprintf(stderr, "ktstr-loader: attach program %s: %s\n",
				bpf_program__name(prog), strerror(errno));
			return 1;
		}
		if (pin) {
			if (snprintf(lpath, sizeof(lpath), "%s_%s", pin, bpf_program__name(prog)) >=
			    (int)sizeof(lpath)) {
				fprintf(stderr, "ktstr-loader: pin path too long\n");
				return 1;
			}
			err = bpf_link__pin(link, lpath);
			if (err) {
				fprintf(stderr, "ktstr-loader: pin %s: %s\n", lpath, strerror(-err));
				return 1;
			}
		}
		printf("ktstr-loader: attached program %s\n", bpf_program__name(prog));
	}
	bpf_object__for_each_map(map, obj) {
		struct bpf_link *link;

		if (bpf_map__type(map) != BPF_MAP_TYPE_STRUCT_OPS)
			continue;
		link = bpf_map__attach_struct_ops(map);
		if (!link) {
			fprintf(stderr, "ktstr-loader: attach %s: %s\n", bpf_map__name(map),
				strerror(errno));
			return 1;
		}
		if (pin) {
			err = bpf_link__pin(link, pin);
			if (err) {
				fprintf(stderr, "ktstr-loader: pin %s: %s\n", pin, strerror(-err));
				return 1;
			}
		}
		printf("ktstr-loader: attached %s%s%s\n", bpf_map__name(map),
		       pin ? ", pinned at " : "", pin ? pin : "");
		attached++;
	}
	if (!attached) {
		fprintf(stderr, "ktstr-loader: %s has no struct_ops map\n", path);
		return 1;
	}
	fflush(stdout);
	if (pin)
		return 0; /* the pinned link keeps the scheduler attached */
	signal(SIGINT, on_signal);
	signal(SIGTERM, on_signal);
	while (!stop)
		pause();
	bpf_object__close(obj);
	return 0;
}

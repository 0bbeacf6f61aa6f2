/* kos.conf: the service's configuration file (libconfig syntax). */
#include "config.h"

#include "kos/internal.h"

#include <libconfig.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define KOS_CONFIG_MAX_SIZE (1024 * 1024)

struct kos_config {
	char *path;
	char *store;
	char *policy;
};

const char *kos_config_default_path(void)
{
	const char *env = getenv("KOS_CONF");

	if (env != NULL && env[0] != '\0')
		return env;
	return KOS_SYSCONFDIR "/kos/kos.conf";
}

/* Resolves value against the directory of the file that names it. A store
 * location with a scheme ("sqlite:", "memory:") keeps its scheme. */
static char *resolve(const char *conf_path, const char *value)
{
	const char *scheme_end = NULL;
	const char *slash;
	size_t dirlen, n;
	char *out;

	if (strncmp(value, "sqlite:", 7) == 0)
		scheme_end = value + 7;
	else if (strncmp(value, "memory:", 7) == 0)
		return kos_strdup(value);
	const char *rel = scheme_end ? scheme_end : value;

	slash = strrchr(conf_path, '/');
	if (rel[0] == '/' || slash == NULL)
		return kos_strdup(value);
	dirlen = (size_t)(slash - conf_path) + 1;
	n = (size_t)(rel - value) + dirlen + strlen(rel) + 1;
	out = malloc(n);
	if (out == NULL)
		return NULL;
	memcpy(out, value, (size_t)(rel - value));
	memcpy(out + (rel - value), conf_path, dirlen);
	strcpy(out + (rel - value) + dirlen, rel);
	return out;
}

void kos_config_free(kos_config *conf)
{
	if (conf == NULL)
		return;
	free(conf->path);
	free(conf->store);
	free(conf->policy);
	free(conf);
}

static void string_setting(kos_diag *d, const char *path, config_setting_t *s, const char *name,
			   char **out)
{
	const char *v;

	if (config_setting_type(s) != CONFIG_TYPE_STRING) {
		kos_diag_add(d, path, config_setting_source_line(s), "%s: must be a string", name);
		return;
	}
	v = config_setting_get_string(s);
	if (v == NULL || v[0] == '\0') {
		kos_diag_add(d, path, config_setting_source_line(s), "%s: must not be empty", name);
		return;
	}
	*out = resolve(path, v);
	if (*out == NULL)
		d->oom = true;
}

kos_rv kos_config_load(const char *path, kos_config **out, char **diag_out)
{
	kos_diag d = { 0 };
	config_t cfg;
	config_setting_t *root, *s;
	struct kos_config *conf = NULL;
	struct stat sb;
	int i;
	kos_rv rv;

	*out = NULL;
	if (diag_out != NULL)
		*diag_out = NULL;
	if (path == NULL)
		return kos_error_set(KOS_E_INVALID, "no configuration file given");
	if (stat(path, &sb) != 0)
		return kos_error_set(KOS_E_IO, "%s: cannot read: %m", path);
	if (!S_ISREG(sb.st_mode))
		return kos_error_set(KOS_E_IO, "%s: not a regular file", path);
	if (sb.st_size > KOS_CONFIG_MAX_SIZE)
		return kos_error_set(KOS_E_IO, "%s: larger than %d bytes", path, KOS_CONFIG_MAX_SIZE);

	config_init(&cfg);
	if (!config_read_file(&cfg, path)) {
		if (config_error_type(&cfg) == CONFIG_ERR_FILE_IO) {
			rv = kos_error_set(KOS_E_IO, "%s: cannot read", path);
			goto out;
		}
		kos_diag_add(&d, config_error_file(&cfg) ? config_error_file(&cfg) : path,
			     config_error_line(&cfg), "%s", config_error_text(&cfg));
		rv = KOS_E_POLICY;
		goto out;
	}
	conf = calloc(1, sizeof(*conf));
	if (conf == NULL || (conf->path = kos_strdup(path)) == NULL) {
		rv = kos_error_set(KOS_E_NOMEM, "out of memory");
		goto out;
	}
	root = config_root_setting(&cfg);
	for (i = 0; (s = config_setting_get_elem(root, (unsigned)i)) != NULL; i++) {
		const char *name = config_setting_name(s);

		if (strcmp(name, "store") == 0)
			string_setting(&d, path, s, name, &conf->store);
		else if (strcmp(name, "policy") == 0)
			string_setting(&d, path, s, name, &conf->policy);
		else
			kos_diag_add(&d, path, config_setting_source_line(s), "unknown setting '%s'",
				     name);
	}
	if (conf->store == NULL)
		kos_diag_add(&d, path, 1, "store: missing (the state store location)");
	if (conf->policy == NULL)
		kos_diag_add(&d, path, 1, "policy: missing (the policy file)");
	if (d.oom) {
		rv = kos_error_set(KOS_E_NOMEM, "out of memory");
		goto out;
	}
	rv = d.count ? KOS_E_POLICY : KOS_OK;
out:
	config_destroy(&cfg);
	if (rv == KOS_OK) {
		*out = conf;
		return KOS_OK;
	}
	kos_config_free(conf);
	if (d.count != 0)
		return kos_diag_finish(&d, diag_out, rv);
	free(d.buf);
	return rv;
}

const char *kos_config_get0_path(const kos_config *conf)
{
	return conf->path;
}

const char *kos_config_get0_store(const kos_config *conf)
{
	return conf->store;
}

const char *kos_config_get0_policy(const kos_config *conf)
{
	return conf->policy;
}

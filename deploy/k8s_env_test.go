package deploy_test

import (
	"maps"
	"slices"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
)

// containerEnv is c's environment as the kubelet builds it (envFrom
// ConfigMaps and Secrets, then env, whose references must name keys that
// exist), with every NAME_FILE that names a file mounted from a Secret
// or ConfigMap replaced by NAME and the file's contents, as eventshop
// reads it. The names are checked against what eventshop reads.
func containerEnv(t *testing.T, m *manifests, where string, spec corev1.PodSpec, c corev1.Container) map[string]string {
	t.Helper()
	env := rawEnv(t, m, where, c)
	checkEnvNames(t, where, slices.Sorted(maps.Keys(env)))
	files := mountedFiles(t, m, where, spec, c)
	for k, path := range maps.Clone(env) {
		name, ok := strings.CutSuffix(k, "_FILE")
		if !ok {
			continue
		}
		v, ok := files[path]
		if !ok {
			t.Errorf("%s: %s=%s is no file mounted from a Secret or ConfigMap key", where, k, path)
		}
		env[name] = strings.TrimRight(v, "\r\n")
		delete(env, k)
	}
	return env
}

// mountedFiles maps each file c sees through a Secret or ConfigMap volume
// to its contents; a key that does not exist fails the test, as the
// kubelet would fail the pod.
func mountedFiles(t *testing.T, m *manifests, where string, spec corev1.PodSpec, c corev1.Container) map[string]string {
	t.Helper()
	files := map[string]string{}
	for _, vm := range c.VolumeMounts {
		i := slices.IndexFunc(spec.Volumes, func(v corev1.Volume) bool { return v.Name == vm.Name })
		if i < 0 {
			t.Errorf("%s mounts volume %s, which the pod does not have", where, vm.Name)
			continue
		}
		v := spec.Volumes[i]
		var data map[string]string
		var items []corev1.KeyToPath
		switch {
		case v.Secret != nil:
			s, ok := m.secrets[v.Secret.SecretName]
			if !ok {
				t.Errorf("%s: volume %s: Secret %s does not exist", where, v.Name, v.Secret.SecretName)
				continue
			}
			data, items = s.StringData, v.Secret.Items
			if mode := v.Secret.DefaultMode; spec.SecurityContext != nil && spec.SecurityContext.RunAsUser != nil && *spec.SecurityContext.RunAsUser != 0 &&
				(mode == nil || *mode&0o044 == 0 || (*mode&0o004 == 0 && spec.SecurityContext.FSGroup == nil)) {
				t.Errorf("%s: volume %s: its files must be readable by the pod's non-root user (defaultMode 0440 and fsGroup)", where, v.Name)
			}
		case v.ConfigMap != nil:
			cm, ok := m.configMaps[v.ConfigMap.Name]
			if !ok {
				t.Errorf("%s: volume %s: ConfigMap %s does not exist", where, v.Name, v.ConfigMap.Name)
				continue
			}
			data, items = cm.Data, v.ConfigMap.Items
		default:
			continue
		}
		if len(items) == 0 {
			for k := range data {
				items = append(items, corev1.KeyToPath{Key: k, Path: k})
			}
		}
		for _, it := range items {
			value, ok := data[it.Key]
			if !ok {
				t.Errorf("%s: volume %s takes key %s, which does not exist", where, v.Name, it.Key)
			}
			switch {
			case vm.SubPath == "":
				files[vm.MountPath+"/"+it.Path] = value
			case vm.SubPath == it.Path:
				files[vm.MountPath] = value
			}
		}
	}
	return files
}

// rawEnv is c's variables: envFrom, then env.
func rawEnv(t *testing.T, m *manifests, where string, c corev1.Container) map[string]string {
	t.Helper()
	env := map[string]string{}
	for _, src := range c.EnvFrom {
		switch {
		case src.ConfigMapRef != nil:
			cm, ok := m.configMaps[src.ConfigMapRef.Name]
			if !ok {
				t.Errorf("%s: envFrom ConfigMap %s does not exist", where, src.ConfigMapRef.Name)
				continue
			}
			maps.Copy(env, cm.Data)
		case src.SecretRef != nil:
			s, ok := m.secrets[src.SecretRef.Name]
			if !ok {
				t.Errorf("%s: envFrom Secret %s does not exist", where, src.SecretRef.Name)
				continue
			}
			maps.Copy(env, s.StringData)
		}
	}
	for _, e := range c.Env {
		switch {
		case e.ValueFrom == nil:
			env[e.Name] = e.Value
		case e.ValueFrom.SecretKeyRef != nil:
			ref := e.ValueFrom.SecretKeyRef
			s, ok := m.secrets[ref.Name]
			v, has := "", false
			if ok {
				v, has = s.StringData[ref.Key]
			}
			if !has {
				t.Errorf("%s: %s takes key %s of Secret %s, which does not exist", where, e.Name, ref.Key, ref.Name)
			}
			env[e.Name] = v
		case e.ValueFrom.ConfigMapKeyRef != nil:
			ref := e.ValueFrom.ConfigMapKeyRef
			cm, ok := m.configMaps[ref.Name]
			v, has := "", false
			if ok {
				v, has = cm.Data[ref.Key]
			}
			if !has {
				t.Errorf("%s: %s takes key %s of ConfigMap %s, which does not exist", where, e.Name, ref.Key, ref.Name)
			}
			env[e.Name] = v
		default:
			t.Errorf("%s: %s comes from a source these tests do not check", where, e.Name)
		}
	}
	return env
}

// Command render renders a Helm 3 chart the way `helm template` does, for
// machines where helm itself cannot be installed. It uses the libraries Helm
// uses (Go text/template, sprig v3, sigs.k8s.io/yaml, xeipuuv/gojsonschema)
// from Debian's golang-*-dev packages, so it builds offline in GOPATH mode
// (see tests/helm/build.sh).
//
//	render [flags] RELEASE CHART_DIR
//	  -n, --namespace NS      release namespace (default "default")
//	  -f, --values FILE       values file (repeatable, later wins)
//	  --set K=V               helm --set syntax (repeatable)
//	  --set-string K=V        as --set, values stay strings
//	  --include-crds          print the chart's crds/ files first
//	  --api-versions G/V      add to .Capabilities.APIVersions (repeatable)
//	  --kube-version vX.Y.Z   .Capabilities.KubeVersion (default v1.32.0)
//	  --is-upgrade            .Release.IsUpgrade true (IsInstall false)
//	  --lookup FILE           objects (YAML documents) that `lookup` finds, to
//	                          model install/upgrade against a live cluster;
//	                          without it lookup returns an empty map, as in
//	                          helm template
//	  --notes                 print the rendered NOTES.txt instead
//	  --values-out FILE       write the coalesced, validated values as JSON
//
// What it reproduces from Helm 3: values coalescing (chart values under -f
// files under --set, null deletes a default), values.schema.json
// validation, the function map (sprig minus env/expandenv, plus include,
// tpl, required, toYaml, fromYaml, fromYamlArray, toJson, fromJson,
// fromJsonArray, lookup), missingkey=zero with "<no value>" removed,
// template parse/execution order, .helmignore, partials (_*) not rendered,
// NOTES.txt not rendered, empty documents dropped, output sorted in Helm's
// install order with "# Source:" headers. Not reproduced: subcharts and
// dependencies, toToml, .Files.AsConfig/AsSecrets, library charts, hooks'
// separate listing (hooks are printed like any other document).
package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"text/template"

	sprig "github.com/Masterminds/sprig/v3"
	"github.com/xeipuuv/gojsonschema"
	"sigs.k8s.io/yaml"
)

type options struct {
	release, chartDir, namespace string
	valueFiles, sets, setStrings []string
	apiVersions                  []string
	kubeVersion                  string
	includeCRDs, isUpgrade       bool
	lookupFile, valuesOut        string
	notes                        bool
}

func usage() {
	fmt.Fprintln(os.Stderr, "usage: render [-n NS] [-f FILE]... [--set K=V]... [--set-string K=V]... [--include-crds] [--api-versions G/V]... [--kube-version V] [--is-upgrade] [--lookup FILE] [--notes] [--values-out FILE] RELEASE CHART_DIR")
	os.Exit(2)
}

func parseArgs(args []string) options {
	o := options{namespace: "default", kubeVersion: "v1.32.0"}
	var pos []string
	for i := 0; i < len(args); i++ {
		a := args[i]
		val := func() string {
			if j := strings.Index(a, "="); j >= 0 && strings.HasPrefix(a, "--") {
				return a[j+1:]
			}
			i++
			if i >= len(args) {
				fmt.Fprintf(os.Stderr, "Error: flag needs an argument: %s\n", a)
				os.Exit(2)
			}
			return args[i]
		}
		name := a
		if strings.HasPrefix(a, "--") {
			if j := strings.Index(a, "="); j >= 0 {
				name = a[:j]
			}
		}
		switch name {
		case "-n", "--namespace":
			o.namespace = val()
		case "-f", "--values":
			o.valueFiles = append(o.valueFiles, val())
		case "--set":
			o.sets = append(o.sets, val())
		case "--set-string":
			o.setStrings = append(o.setStrings, val())
		case "--api-versions", "-a":
			o.apiVersions = append(o.apiVersions, val())
		case "--kube-version":
			o.kubeVersion = val()
		case "--include-crds":
			o.includeCRDs = true
		case "--is-upgrade":
			o.isUpgrade = true
		case "--lookup":
			o.lookupFile = val()
		case "--values-out":
			o.valuesOut = val()
		case "--notes":
			o.notes = true
		case "-h", "--help":
			usage()
		default:
			if strings.HasPrefix(a, "-") {
				fmt.Fprintf(os.Stderr, "Error: unknown flag: %s\n", a)
				os.Exit(2)
			}
			pos = append(pos, a)
		}
	}
	if len(pos) != 2 {
		usage()
	}
	o.release, o.chartDir = pos[0], pos[1]
	return o
}

func die(format string, a ...interface{}) {
	fmt.Fprintf(os.Stderr, "Error: "+format+"\n", a...)
	os.Exit(1)
}

// ------------------------------------------------------------------ values

func readYAMLMap(p string) (map[string]interface{}, error) {
	b, err := os.ReadFile(p)
	if err != nil {
		return nil, err
	}
	m := map[string]interface{}{}
	if err := yaml.Unmarshal(b, &m); err != nil {
		return nil, fmt.Errorf("failed to parse %s: %v", p, err)
	}
	if m == nil {
		m = map[string]interface{}{}
	}
	return m, nil
}

// mergeMaps: b over a, recursively for maps (helm's values.go mergeMaps).
func mergeMaps(a, b map[string]interface{}) map[string]interface{} {
	out := make(map[string]interface{}, len(a))
	for k, v := range a {
		out[k] = v
	}
	for k, v := range b {
		if vm, ok := v.(map[string]interface{}); ok {
			if bv, ok := out[k]; ok {
				if bm, ok := bv.(map[string]interface{}); ok {
					out[k] = mergeMaps(bm, vm)
					continue
				}
			}
		}
		out[k] = v
	}
	return out
}

func deepCopy(v interface{}) interface{} {
	switch t := v.(type) {
	case map[string]interface{}:
		m := make(map[string]interface{}, len(t))
		for k, x := range t {
			m[k] = deepCopy(x)
		}
		return m
	case []interface{}:
		l := make([]interface{}, len(t))
		for i, x := range t {
			l[i] = deepCopy(x)
		}
		return l
	}
	return v
}

// coalesce: chart defaults under user values; a user null deletes the key
// (helm's chartutil.coalesceTablesFullKey).
func coalesce(dst, src map[string]interface{}) map[string]interface{} {
	if dst == nil {
		dst = map[string]interface{}{}
	}
	for k, sv := range src {
		dv, ok := dst[k]
		if ok && dv == nil {
			delete(dst, k)
			continue
		}
		if !ok {
			dst[k] = deepCopy(sv)
			continue
		}
		dm, dIsMap := dv.(map[string]interface{})
		sm, sIsMap := sv.(map[string]interface{})
		if dIsMap && sIsMap {
			dst[k] = coalesce(dm, sm)
		} else if dIsMap != sIsMap && sv != nil {
			fmt.Fprintf(os.Stderr, "coalesce.go: warning: cannot overwrite table with non table for %s (%v)\n", k, sv)
		}
	}
	// nulls the user gave for keys the chart does not have
	for k, v := range dst {
		if v == nil {
			delete(dst, k)
		}
	}
	return dst
}

// ---------------------------------------------------------------- --set

// splitUnescaped splits s on sep, honouring backslash escapes and braces.
func splitUnescaped(s string, sep rune, braces bool) []string {
	var out []string
	var cur strings.Builder
	depth := 0
	esc := false
	for _, r := range s {
		switch {
		case esc:
			cur.WriteRune('\\')
			cur.WriteRune(r)
			esc = false
		case r == '\\':
			esc = true
		case braces && r == '{':
			depth++
			cur.WriteRune(r)
		case braces && r == '}':
			depth--
			cur.WriteRune(r)
		case r == sep && depth == 0:
			out = append(out, cur.String())
			cur.Reset()
		default:
			cur.WriteRune(r)
		}
	}
	if esc {
		cur.WriteRune('\\')
	}
	out = append(out, cur.String())
	return out
}

func unescape(s string) string {
	var b strings.Builder
	esc := false
	for _, r := range s {
		if esc {
			b.WriteRune(r)
			esc = false
		} else if r == '\\' {
			esc = true
		} else {
			b.WriteRune(r)
		}
	}
	return b.String()
}

func typedVal(s string, asString bool) interface{} {
	if asString {
		return s
	}
	switch {
	case strings.EqualFold(s, "true"):
		return true
	case strings.EqualFold(s, "false"):
		return false
	case strings.EqualFold(s, "null"):
		return nil
	case s == "0":
		return int64(0)
	}
	if len(s) != 0 && s[0] != '0' {
		if iv, err := strconv.ParseInt(s, 10, 64); err == nil {
			return iv
		}
	}
	return s
}

var indexRe = regexp.MustCompile(`^(.*?)\[(\d+)\]$`)

// setPath puts v at path (a.b[0].c) into m.
func setPath(m map[string]interface{}, keys []string, v interface{}) error {
	k := unescape(keys[0])
	last := len(keys) == 1
	if mm := indexRe.FindStringSubmatch(k); mm != nil {
		name := mm[1]
		idx, _ := strconv.Atoi(mm[2])
		if idx > 65536 {
			return fmt.Errorf("index of %d is greater than maximum supported index of 65536", idx)
		}
		list, _ := m[name].([]interface{})
		for len(list) <= idx {
			list = append(list, nil)
		}
		if last {
			list[idx] = v
		} else {
			sub, ok := list[idx].(map[string]interface{})
			if !ok {
				sub = map[string]interface{}{}
			}
			if err := setPath(sub, keys[1:], v); err != nil {
				return err
			}
			list[idx] = sub
		}
		m[name] = list
		return nil
	}
	if last {
		m[k] = v
		return nil
	}
	sub, ok := m[k].(map[string]interface{})
	if !ok {
		sub = map[string]interface{}{}
		m[k] = sub
	}
	return setPath(sub, keys[1:], v)
}

func parseSet(m map[string]interface{}, s string, asString bool) error {
	for _, item := range splitUnescaped(s, ',', true) {
		if item == "" {
			continue
		}
		eq := -1
		esc := false
		for i, r := range item {
			if esc {
				esc = false
				continue
			}
			if r == '\\' {
				esc = true
				continue
			}
			if r == '=' {
				eq = i
				break
			}
		}
		if eq < 0 {
			return fmt.Errorf("failed parsing --set data: key %q has no value", item)
		}
		key, raw := item[:eq], item[eq+1:]
		var v interface{}
		if strings.HasPrefix(raw, "{") && strings.HasSuffix(raw, "}") {
			var list []interface{}
			inner := raw[1 : len(raw)-1]
			if inner != "" {
				for _, e := range splitUnescaped(inner, ',', false) {
					list = append(list, typedVal(unescape(e), asString))
				}
			}
			if list == nil {
				list = []interface{}{}
			}
			v = list
		} else {
			v = typedVal(unescape(raw), asString)
		}
		if err := setPath(m, splitUnescaped(key, '.', false), v); err != nil {
			return err
		}
	}
	return nil
}

// ------------------------------------------------------------- .helmignore

type ignoreRule struct {
	pattern string
	dirOnly bool
	negate  bool
}

func loadHelmignore(dir string) []ignoreRule {
	b, err := os.ReadFile(filepath.Join(dir, ".helmignore"))
	if err != nil {
		return nil
	}
	var rules []ignoreRule
	for _, line := range strings.Split(string(b), "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		r := ignoreRule{}
		if strings.HasPrefix(line, "!") {
			r.negate = true
			line = line[1:]
		}
		if strings.HasSuffix(line, "/") {
			r.dirOnly = true
			line = strings.TrimSuffix(line, "/")
		}
		r.pattern = strings.TrimPrefix(line, "/")
		rules = append(rules, r)
	}
	return rules
}

func ignored(rules []ignoreRule, rel string, isDir bool) bool {
	out := false
	for _, r := range rules {
		if r.dirOnly && !isDir {
			continue
		}
		match := false
		if strings.Contains(r.pattern, "/") {
			match, _ = filepath.Match(r.pattern, rel)
		} else {
			match, _ = filepath.Match(r.pattern, filepath.Base(rel))
		}
		if match {
			out = !r.negate
		}
	}
	return out
}

// chartFiles: every file of the chart not ignored, relative path -> bytes.
func chartFiles(dir string) (map[string][]byte, error) {
	rules := loadHelmignore(dir)
	files := map[string][]byte{}
	err := filepath.Walk(dir, func(p string, info os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		if rel == "." {
			return nil
		}
		rel = filepath.ToSlash(rel)
		if ignored(rules, rel, info.IsDir()) {
			if info.IsDir() {
				return filepath.SkipDir
			}
			return nil
		}
		if info.IsDir() {
			return nil
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		files[rel] = b
		return nil
	})
	return files, err
}

// ------------------------------------------------------------ .Files etc.

// Files is .Files (helm's engine/files.go, the common part).
type Files map[string][]byte

func (f Files) GetBytes(name string) []byte { return f[name] }
func (f Files) Get(name string) string      { return string(f[name]) }
func (f Files) Lines(name string) []string {
	s := string(f[name])
	if s == "" {
		return []string{}
	}
	return strings.Split(strings.TrimSuffix(s, "\n"), "\n")
}
func (f Files) Glob(pattern string) Files {
	out := Files{}
	for k, v := range f {
		if ok, _ := path.Match(pattern, k); ok {
			out[k] = v
		}
	}
	return out
}

// VersionSet is .Capabilities.APIVersions.
type VersionSet []string

func (v VersionSet) Has(apiVersion string) bool {
	for _, x := range v {
		if x == apiVersion {
			return true
		}
	}
	return false
}

type KubeVersion struct {
	Version, Major, Minor string
}

func (k KubeVersion) String() string     { return k.Version }
func (k KubeVersion) GitVersion() string { return k.Version }

type Capabilities struct {
	APIVersions VersionSet
	KubeVersion KubeVersion
	HelmVersion map[string]string
}

// Metadata is .Chart (helm's chart.Metadata, the fields templates use).
type Metadata struct {
	Name, Home, Version, Description, APIVersion, Condition, Tags, AppVersion, KubeVersion, Type, Icon string
	Sources, Keywords                                                                                  []string
	Deprecated                                                                                         bool
	Annotations                                                                                        map[string]string
}

func (m *Metadata) IsRoot() bool { return true }

var defaultAPIVersions = []string{
	"v1", "admissionregistration.k8s.io/v1", "apiextensions.k8s.io/v1", "apiregistration.k8s.io/v1",
	"apps/v1", "authentication.k8s.io/v1", "authorization.k8s.io/v1", "autoscaling/v1", "autoscaling/v2",
	"batch/v1", "certificates.k8s.io/v1", "coordination.k8s.io/v1", "discovery.k8s.io/v1",
	"events.k8s.io/v1", "flowcontrol.apiserver.k8s.io/v1", "networking.k8s.io/v1", "node.k8s.io/v1",
	"policy/v1", "rbac.authorization.k8s.io/v1", "scheduling.k8s.io/v1", "storage.k8s.io/v1",
}

// --------------------------------------------------------------- lookup

type lookupStore []map[string]interface{}

func loadLookup(p string) (lookupStore, error) {
	if p == "" {
		return nil, nil
	}
	b, err := os.ReadFile(p)
	if err != nil {
		return nil, err
	}
	var out lookupStore
	for _, d := range splitManifests(string(b)) {
		m := map[string]interface{}{}
		if err := yaml.Unmarshal([]byte(d), &m); err != nil {
			return nil, err
		}
		if len(m) > 0 {
			out = append(out, m)
		}
	}
	return out, nil
}

func (s lookupStore) lookup(apiVersion, kind, namespace, name string) (map[string]interface{}, error) {
	var items []interface{}
	for _, o := range s {
		md, _ := o["metadata"].(map[string]interface{})
		ns, _ := md["namespace"].(string)
		n, _ := md["name"].(string)
		if o["apiVersion"] != apiVersion || o["kind"] != kind || (namespace != "" && ns != namespace) {
			continue
		}
		if name == "" {
			items = append(items, deepCopy(o))
		} else if n == name {
			return deepCopy(o).(map[string]interface{}), nil
		}
	}
	if name == "" {
		if items == nil {
			items = []interface{}{}
		}
		return map[string]interface{}{"apiVersion": apiVersion, "kind": kind + "List", "items": items}, nil
	}
	return map[string]interface{}{}, nil
}

// ------------------------------------------------------------- rendering

func toYAML(v interface{}) string {
	b, err := yaml.Marshal(v)
	if err != nil {
		return ""
	}
	return strings.TrimSuffix(string(b), "\n")
}

func funcMap(t **template.Template, look lookupStore) template.FuncMap {
	f := sprig.TxtFuncMap()
	delete(f, "env")
	delete(f, "expandenv")
	included := map[string]int{}
	f["toYaml"] = toYAML
	f["fromYaml"] = func(s string) map[string]interface{} {
		m := map[string]interface{}{}
		if err := yaml.Unmarshal([]byte(s), &m); err != nil {
			m["Error"] = err.Error()
		}
		return m
	}
	f["fromYamlArray"] = func(s string) []interface{} {
		a := []interface{}{}
		if err := yaml.Unmarshal([]byte(s), &a); err != nil {
			a = []interface{}{err.Error()}
		}
		return a
	}
	f["toJson"] = func(v interface{}) string {
		b, err := json.Marshal(v)
		if err != nil {
			return ""
		}
		return string(b)
	}
	f["fromJson"] = func(s string) map[string]interface{} {
		m := map[string]interface{}{}
		if err := json.Unmarshal([]byte(s), &m); err != nil {
			m["Error"] = err.Error()
		}
		return m
	}
	f["fromJsonArray"] = func(s string) []interface{} {
		a := []interface{}{}
		if err := json.Unmarshal([]byte(s), &a); err != nil {
			a = []interface{}{err.Error()}
		}
		return a
	}
	f["toToml"] = func(v interface{}) string { return "toToml is not supported by tests/helm/render" }
	f["include"] = func(name string, data interface{}) (string, error) {
		var buf strings.Builder
		if v, ok := included[name]; ok {
			if v > 1000 {
				return "", fmt.Errorf("rendering template has a nested reference name: %s", name)
			}
			included[name]++
		} else {
			included[name] = 1
		}
		err := (*t).ExecuteTemplate(&buf, name, data)
		included[name]--
		return buf.String(), err
	}
	f["tpl"] = func(text string, data interface{}) (string, error) {
		c, err := (*t).Clone()
		if err != nil {
			return "", err
		}
		c, err = c.New("tpl").Option("missingkey=zero").Parse(text)
		if err != nil {
			return "", fmt.Errorf("cannot parse template %q: %v", text, err)
		}
		var buf strings.Builder
		if err := c.Execute(&buf, data); err != nil {
			return "", fmt.Errorf("error during tpl function execution for %q: %v", text, err)
		}
		return strings.ReplaceAll(buf.String(), "<no value>", ""), nil
	}
	f["required"] = func(warn string, val interface{}) (interface{}, error) {
		if val == nil {
			return val, errors.New(warn)
		}
		if s, ok := val.(string); ok && s == "" {
			return val, errors.New(warn)
		}
		return val, nil
	}
	f["lookup"] = func(apiVersion, kind, namespace, name string) (map[string]interface{}, error) {
		return look.lookup(apiVersion, kind, namespace, name)
	}
	return f
}

var sepRe = regexp.MustCompile(`(?:^|\s*\n)---\s*`)

// splitManifests splits a YAML stream into documents as helm does.
func splitManifests(s string) []string {
	var out []string
	for _, d := range sepRe.Split(s, -1) {
		if strings.TrimSpace(d) == "" {
			continue
		}
		out = append(out, strings.TrimSpace(d))
	}
	return out
}

// onlyComments: a document with nothing but comments and blank lines.
func onlyComments(d string) bool {
	for _, l := range strings.Split(d, "\n") {
		l = strings.TrimSpace(l)
		if l != "" && !strings.HasPrefix(l, "#") {
			return false
		}
	}
	return true
}

// helm's releaseutil.InstallOrder.
var installOrder = []string{
	"PriorityClass", "Namespace", "NetworkPolicy", "ResourceQuota", "LimitRange", "PodSecurityPolicy",
	"PodDisruptionBudget", "ServiceAccount", "Secret", "SecretList", "ConfigMap", "StorageClass",
	"PersistentVolume", "PersistentVolumeClaim", "CustomResourceDefinition", "ClusterRole",
	"ClusterRoleList", "ClusterRoleBinding", "ClusterRoleBindingList", "Role", "RoleList", "RoleBinding",
	"RoleBindingList", "Service", "DaemonSet", "Pod", "ReplicationController", "ReplicaSet", "Deployment",
	"HorizontalPodAutoscaler", "StatefulSet", "Job", "CronJob", "IngressClass", "Ingress", "APIService",
}

func kindRank(kind string) int {
	for i, k := range installOrder {
		if k == kind {
			return i
		}
	}
	return len(installOrder)
}

type manifest struct {
	source, content, kind string
}

// byPathLen is helm's engine ordering of templates (reversed: deeper first).
func sortTemplateNames(names []string) {
	sort.Slice(names, func(i, j int) bool {
		a, b := names[i], names[j]
		ca, cb := strings.Count(a, "/"), strings.Count(b, "/")
		if ca == cb {
			return a > b
		}
		return ca > cb
	})
}

func main() {
	o := parseArgs(os.Args[1:])
	chartYAML, err := readYAMLMap(filepath.Join(o.chartDir, "Chart.yaml"))
	if err != nil {
		die("%v", err)
	}
	var meta Metadata
	if b, err := json.Marshal(chartYAML); err == nil {
		_ = json.Unmarshal(b, &meta)
	}
	if meta.Name == "" || meta.Version == "" || meta.APIVersion == "" {
		die("validation: chart.metadata.name, version and apiVersion are required")
	}
	files, err := chartFiles(o.chartDir)
	if err != nil {
		die("%v", err)
	}

	// values: -f files merged in order, then --set-string, then --set
	user := map[string]interface{}{}
	for _, p := range o.valueFiles {
		m, err := readYAMLMap(p)
		if err != nil {
			die("%v", err)
		}
		user = mergeMaps(user, m)
	}
	for _, s := range o.setStrings {
		if err := parseSet(user, s, true); err != nil {
			die("failed parsing --set-string data: %v", err)
		}
	}
	for _, s := range o.sets {
		if err := parseSet(user, s, false); err != nil {
			die("failed parsing --set data: %v", err)
		}
	}
	defaults := map[string]interface{}{}
	if b, ok := files["values.yaml"]; ok {
		if err := yaml.Unmarshal(b, &defaults); err != nil {
			die("cannot load values.yaml: %v", err)
		}
		if defaults == nil {
			defaults = map[string]interface{}{}
		}
	}
	vals := coalesce(deepCopy(user).(map[string]interface{}), defaults)

	if schema, ok := files["values.schema.json"]; ok {
		vj, err := json.Marshal(vals)
		if err != nil {
			die("%v", err)
		}
		res, err := gojsonschema.Validate(gojsonschema.NewBytesLoader(schema), gojsonschema.NewBytesLoader(vj))
		if err != nil {
			die("values.schema.json: %v", err)
		}
		if !res.Valid() {
			var sb strings.Builder
			for _, e := range res.Errors() {
				sb.WriteString(fmt.Sprintf("- %s\n", e))
			}
			die("values don't meet the specifications of the schema(s) in the following chart(s):\n%s:\n%s", meta.Name, sb.String())
		}
	}
	if o.valuesOut != "" {
		b, _ := json.MarshalIndent(vals, "", "  ")
		if err := os.WriteFile(o.valuesOut, append(b, '\n'), 0o644); err != nil {
			die("%v", err)
		}
	}

	look, err := loadLookup(o.lookupFile)
	if err != nil {
		die("--lookup: %v", err)
	}

	kv := strings.TrimPrefix(o.kubeVersion, "v")
	parts := strings.SplitN(kv, ".", 3)
	for len(parts) < 2 {
		parts = append(parts, "0")
	}
	caps := Capabilities{
		APIVersions: append(VersionSet(append([]string{}, defaultAPIVersions...)), o.apiVersions...),
		KubeVersion: KubeVersion{Version: "v" + kv, Major: parts[0], Minor: parts[1]},
		HelmVersion: map[string]string{"version": "v3.14.4", "go_version": "go1.19"},
	}
	release := map[string]interface{}{
		"Name": o.release, "Namespace": o.namespace, "IsUpgrade": o.isUpgrade, "IsInstall": !o.isUpgrade,
		"Revision": 1, "Service": "Helm",
	}
	if o.isUpgrade {
		release["Revision"] = 2
	}

	// templates: every file under templates/, named <chart>/templates/...
	var t *template.Template
	t = template.New("gotpl").Option("missingkey=zero").Funcs(funcMap(&t, look))
	var names []string
	for rel := range files {
		if strings.HasPrefix(rel, "templates/") {
			names = append(names, meta.Name+"/"+rel)
		}
	}
	sortTemplateNames(names)
	for _, n := range names {
		rel := strings.TrimPrefix(n, meta.Name+"/")
		if _, err := t.New(n).Parse(string(files[rel])); err != nil {
			die("parse error at (%s): %v", n, err)
		}
	}

	var out []manifest
	for _, n := range names {
		base := path.Base(n)
		if strings.HasPrefix(base, "_") {
			continue
		}
		isNotes := strings.HasSuffix(n, "/templates/NOTES.txt")
		if isNotes != o.notes {
			continue
		}
		data := map[string]interface{}{
			"Values": vals, "Release": release, "Chart": &meta, "Capabilities": caps, "Files": Files(files),
			"Template":  map[string]interface{}{"Name": n, "BasePath": meta.Name + "/templates"},
			"Subcharts": map[string]interface{}{},
		}
		var buf bytes.Buffer
		if err := t.ExecuteTemplate(&buf, n, data); err != nil {
			die("%v", cleanupErr(err))
		}
		text := strings.ReplaceAll(buf.String(), "<no value>", "")
		if o.notes {
			fmt.Print(text)
			return
		}
		for _, d := range splitManifests(text) {
			if onlyComments(d) {
				continue
			}
			m := manifest{source: n, content: d}
			var head struct {
				Kind string `json:"kind"`
			}
			if err := yaml.Unmarshal([]byte(d), &head); err != nil {
				die("YAML parse error on %s: %v", n, err)
			}
			m.kind = head.Kind
			out = append(out, m)
		}
	}
	sort.SliceStable(out, func(i, j int) bool {
		ri, rj := kindRank(out[i].kind), kindRank(out[j].kind)
		if ri != rj {
			return ri < rj
		}
		return out[i].source < out[j].source
	})

	var w strings.Builder
	if o.includeCRDs {
		var crds []string
		for rel := range files {
			if strings.HasPrefix(rel, "crds/") && (strings.HasSuffix(rel, ".yaml") || strings.HasSuffix(rel, ".yml") || strings.HasSuffix(rel, ".json")) {
				crds = append(crds, rel)
			}
		}
		sort.Strings(crds)
		for _, rel := range crds {
			for _, d := range splitManifests(string(files[rel])) {
				fmt.Fprintf(&w, "---\n# Source: %s/%s\n%s\n", meta.Name, rel, d)
			}
		}
	}
	for _, m := range out {
		fmt.Fprintf(&w, "---\n# Source: %s\n%s\n", m.source, m.content)
	}
	fmt.Print(w.String())
}

var execErrRe = regexp.MustCompile(`^template: (.*?): executing "(.*?)" at <(.*?)>: error calling (\w+): (.*)$`)

// cleanupErr words template errors as helm does ("execution error at").
func cleanupErr(err error) error {
	s := err.Error()
	if m := execErrRe.FindStringSubmatch(s); m != nil && (m[4] == "required" || m[4] == "fail") {
		return fmt.Errorf("execution error at (%s): %s", m[1], m[5])
	}
	return err
}

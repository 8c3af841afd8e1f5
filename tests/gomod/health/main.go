// Command kseal-health computes, for live SealedSecret objects, the health
// that three GitOps clients compute, each with its own code:
//
//   - kstatus (sigs.k8s.io/cli-utils): status.Compute, what Flux falls back
//     to for a kind without health check expressions;
//   - Flux's health check expressions (spec.healthCheckExprs of a Flux
//     Kustomization), evaluated by Flux's own CEL status reader from
//     github.com/fluxcd/pkg/runtime/cel;
//   - Argo CD's health Lua from argocd-cm, run in gopher-lua the way Argo CD
//     runs it (global `obj`, only the libraries Argo CD opens, `status` and
//     `message` read from the returned table).
//
// The expressions and the script are read from the files given on the
// command line (the examples this repository ships), never copied here.
//
// Usage:
//
//	kseal-health --argocd-cm PATH --flux-kustomization PATH < objects.json
//
// stdin holds a JSON array of SealedSecret objects as the API server returns
// them; stdout gets a JSON array with one entry per object, in order:
//
//	{"kstatus":{"status":"Current","message":"..."},
//	 "flux":{"status":"Current","message":""},
//	 "argocd":{"status":"Healthy","message":"..."}}
package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/fluxcd/cli-utils/pkg/kstatus/polling/engine"
	"github.com/fluxcd/pkg/apis/kustomize"
	fluxcel "github.com/fluxcd/pkg/runtime/cel"
	lua "github.com/yuin/gopher-lua"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	utiljson "k8s.io/apimachinery/pkg/util/json"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/cli-utils/pkg/kstatus/status"
	"sigs.k8s.io/yaml"
)

const (
	sealedSecretAPIVersion = "kseal.dev/v1alpha1"
	sealedSecretKind       = "SealedSecret"
	// Argo CD's argocd-cm key for a health script: group_Kind.
	argoHealthKey = "resource.customizations.health.kseal.dev_SealedSecret"
)

type verdict struct {
	Status  string `json:"status"`
	Message string `json:"message"`
}

type health struct {
	Kstatus verdict `json:"kstatus"`
	Flux    verdict `json:"flux"`
	Argocd  verdict `json:"argocd"`
}

func main() {
	if err := run(); err != nil {
		fmt.Fprintf(os.Stderr, "kseal-health: %v\n", err)
		os.Exit(1)
	}
}

func run() error {
	argoCM := flag.String("argocd-cm", "", "Argo CD ConfigMap (YAML) with the SealedSecret health Lua")
	fluxFile := flag.String("flux-kustomization", "", "Flux manifests (multi-document YAML) with Kustomization healthCheckExprs for SealedSecret")
	flag.Parse()
	if *argoCM == "" || *fluxFile == "" {
		flag.Usage()
		return errors.New("both --argocd-cm and --flux-kustomization are required")
	}
	if flag.NArg() != 0 {
		return fmt.Errorf("unexpected arguments: %q", flag.Args())
	}

	script, err := argoHealthScript(*argoCM)
	if err != nil {
		return err
	}
	check, err := fluxHealthCheck(*fluxFile)
	if err != nil {
		return err
	}
	newReader, err := fluxcel.NewStatusReader([]kustomize.CustomHealthCheck{check})
	if err != nil {
		return fmt.Errorf("%s: Flux rejects the SealedSecret health check: %w", *fluxFile, err)
	}
	// ReadStatusForObject needs neither a REST mapper nor a cluster reader.
	fluxReader := newReader(nil)

	input, err := io.ReadAll(os.Stdin)
	if err != nil {
		return fmt.Errorf("reading stdin: %w", err)
	}
	var objects []any
	// apimachinery's JSON keeps whole numbers as int64, as the clients see
	// them (kstatus rejects a float64 metadata.generation).
	if err := utiljson.Unmarshal(input, &objects); err != nil {
		return fmt.Errorf("stdin is not a JSON array of objects: %w", err)
	}

	results := make([]health, 0, len(objects))
	for i, o := range objects {
		m, ok := o.(map[string]any)
		if !ok {
			return fmt.Errorf("object %d: not a JSON object", i)
		}
		u := &unstructured.Unstructured{Object: m}
		if u.GetAPIVersion() != sealedSecretAPIVersion || u.GetKind() != sealedSecretKind {
			return fmt.Errorf("object %d: %s %s is not a %s %s", i, u.GetAPIVersion(), u.GetKind(), sealedSecretAPIVersion, sealedSecretKind)
		}
		var h health
		// Each client gets its own copy: none may see another's changes.
		if h.Kstatus, err = kstatusHealth(u.DeepCopy()); err != nil {
			return fmt.Errorf("object %d: kstatus: %w", i, err)
		}
		if h.Flux, err = fluxHealth(fluxReader, u.DeepCopy()); err != nil {
			return fmt.Errorf("object %d: Flux: %w", i, err)
		}
		if h.Argocd, err = argoHealth(script, u.DeepCopy()); err != nil {
			return fmt.Errorf("object %d: Argo CD health Lua from %s: %w", i, *argoCM, err)
		}
		results = append(results, h)
	}

	out, err := json.Marshal(results)
	if err != nil {
		return err
	}
	_, err = os.Stdout.Write(append(out, '\n'))
	return err
}

// yamlDocuments splits a (multi-document) YAML file into documents.
func yamlDocuments(path string) ([][]byte, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	reader := utilyaml.NewYAMLReader(bufio.NewReader(bytes.NewReader(data)))
	var docs [][]byte
	for {
		doc, err := reader.Read()
		if errors.Is(err, io.EOF) {
			return docs, nil
		}
		if err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		if len(bytes.TrimSpace(doc)) > 0 {
			docs = append(docs, doc)
		}
	}
}

// argoHealthScript returns the SealedSecret health Lua of the argocd-cm
// ConfigMap in path.
func argoHealthScript(path string) (string, error) {
	docs, err := yamlDocuments(path)
	if err != nil {
		return "", err
	}
	var scripts []string
	for i, doc := range docs {
		var cm struct {
			APIVersion string            `json:"apiVersion"`
			Kind       string            `json:"kind"`
			Data       map[string]string `json:"data"`
		}
		if err := yaml.Unmarshal(doc, &cm); err != nil {
			return "", fmt.Errorf("%s: document %d: %w", path, i, err)
		}
		if cm.APIVersion != "v1" || cm.Kind != "ConfigMap" {
			continue
		}
		if s, ok := cm.Data[argoHealthKey]; ok {
			scripts = append(scripts, s)
		}
	}
	switch {
	case len(scripts) == 0:
		return "", fmt.Errorf("%s: no ConfigMap has data[%q]", path, argoHealthKey)
	case len(scripts) > 1:
		return "", fmt.Errorf("%s: %d ConfigMaps have data[%q]", path, len(scripts), argoHealthKey)
	case strings.TrimSpace(scripts[0]) == "":
		return "", fmt.Errorf("%s: data[%q] is empty", path, argoHealthKey)
	}
	return scripts[0], nil
}

// fluxHealthCheck returns the SealedSecret entry of spec.healthCheckExprs of
// the Flux Kustomizations in path; every Kustomization that has one must have
// the same.
func fluxHealthCheck(path string) (kustomize.CustomHealthCheck, error) {
	var found []kustomize.CustomHealthCheck
	var where []string
	docs, err := yamlDocuments(path)
	if err != nil {
		return kustomize.CustomHealthCheck{}, err
	}
	for i, doc := range docs {
		var k struct {
			APIVersion string `json:"apiVersion"`
			Kind       string `json:"kind"`
			Metadata   struct {
				Name string `json:"name"`
			} `json:"metadata"`
			Spec struct {
				HealthCheckExprs []kustomize.CustomHealthCheck `json:"healthCheckExprs"`
			} `json:"spec"`
		}
		if err := yaml.Unmarshal(doc, &k); err != nil {
			return kustomize.CustomHealthCheck{}, fmt.Errorf("%s: document %d: %w", path, i, err)
		}
		gv, err := schema.ParseGroupVersion(k.APIVersion)
		if err != nil || gv.Group != "kustomize.toolkit.fluxcd.io" || k.Kind != "Kustomization" {
			continue
		}
		for j, hc := range k.Spec.HealthCheckExprs {
			if hc.APIVersion == sealedSecretAPIVersion && hc.Kind == sealedSecretKind {
				found = append(found, hc)
				where = append(where, fmt.Sprintf("Kustomization %s healthCheckExprs[%d]", k.Metadata.Name, j))
			}
		}
	}
	if len(found) == 0 {
		return kustomize.CustomHealthCheck{}, fmt.Errorf("%s: no Kustomization has a healthCheckExprs entry for %s %s", path, sealedSecretAPIVersion, sealedSecretKind)
	}
	for i := range found[1:] {
		if found[i+1] != found[0] {
			return kustomize.CustomHealthCheck{}, fmt.Errorf("%s: %s differs from %s", path, where[i+1], where[0])
		}
	}
	return found[0], nil
}

func kstatusHealth(u *unstructured.Unstructured) (verdict, error) {
	res, err := status.Compute(u)
	if err != nil {
		return verdict{}, err
	}
	return verdict{Status: res.Status.String(), Message: res.Message}, nil
}

// fluxHealth reads the status through Flux's CEL status reader, as the
// kustomize-controller's health check does. An expression that fails to
// evaluate gives Flux's own answer: status Unknown, with the error (Flux
// prints it after the status when the health check times out).
func fluxHealth(reader engine.StatusReader, u *unstructured.Unstructured) (verdict, error) {
	rs, err := reader.ReadStatusForObject(context.Background(), nil, u)
	if err != nil {
		return verdict{}, err
	}
	v := verdict{Status: rs.Status.String(), Message: rs.Message}
	if rs.Error != nil {
		v.Message = rs.Error.Error()
	}
	return v, nil
}

// argoHealth runs the health script the way Argo CD's util/lua does: a fresh
// state with only the base, package and table libraries (Argo CD also opens
// an os library cut down to os.time and os.date, which the script does not
// use; string, io, math and debug are not there), the object as the global
// `obj`, a one-second limit, and the returned table's `status` and
// `message`.
func argoHealth(script string, u *unstructured.Unstructured) (verdict, error) {
	l := lua.NewState(lua.Options{SkipOpenLibs: true})
	defer l.Close()
	for _, lib := range []struct {
		name string
		open lua.LGFunction
	}{
		{lua.LoadLibName, lua.OpenPackage},
		{lua.BaseLibName, lua.OpenBase},
		{lua.TabLibName, lua.OpenTable},
	} {
		if err := l.CallByParam(lua.P{Fn: l.NewFunction(lib.open), NRet: 0, Protect: true}, lua.LString(lib.name)); err != nil {
			return verdict{}, fmt.Errorf("opening %s: %w", lib.name, err)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	l.SetContext(ctx)
	l.SetGlobal("obj", toLua(l, u.Object))

	if err := l.DoString(script); err != nil {
		// Like Argo CD, drop the Lua stack trace of a run-time error.
		var apiErr *lua.ApiError
		if errors.As(err, &apiErr) && apiErr.Type == lua.ApiErrorRun {
			apiErr.StackTrace = ""
		}
		return verdict{}, err
	}
	ret := l.Get(-1)
	switch ret.Type() {
	case lua.LTTable:
	case lua.LTNil:
		return verdict{}, errors.New("the script returned nil: Argo CD would then assess no health at all")
	default:
		return verdict{}, fmt.Errorf("expect table output from Lua script, not %s", ret.Type())
	}
	tbl := ret.(*lua.LTable)
	field := func(name string) (string, error) {
		switch v := tbl.RawGetString(name).(type) {
		case *lua.LNilType:
			return "", nil
		case lua.LString:
			return string(v), nil
		default:
			return "", fmt.Errorf("the returned table's %s is a %s, not a string", name, v.Type())
		}
	}
	st, err := field("status")
	if err != nil {
		return verdict{}, err
	}
	msg, err := field("message")
	if err != nil {
		return verdict{}, err
	}
	switch st {
	case "Unknown", "Progressing", "Suspended", "Healthy", "Degraded", "Missing":
		return verdict{Status: st, Message: msg}, nil
	case "":
		if isArray(tbl) {
			// Argo CD encodes the table as JSON: an empty table (or a plain
			// list) becomes an array, which it takes as an empty status.
			return verdict{}, nil
		}
	}
	// What Argo CD makes of a status code it does not know.
	return verdict{Status: "Unknown", Message: "Lua returned an invalid health status"}, nil
}

func isArray(t *lua.LTable) bool {
	array := true
	t.ForEach(func(k, _ lua.LValue) {
		if k.Type() != lua.LTNumber {
			array = false
		}
	})
	return array
}

// toLua converts a decoded JSON value to Lua as Argo CD does: maps become
// tables keyed by string, arrays become sequences (1-based), numbers
// LNumber, and null becomes nil (so a null field reads as absent).
func toLua(l *lua.LState, value any) lua.LValue {
	switch v := value.(type) {
	case bool:
		return lua.LBool(v)
	case string:
		return lua.LString(v)
	case int64:
		return lua.LNumber(v)
	case float64:
		return lua.LNumber(v)
	case []any:
		t := l.CreateTable(len(v), 0)
		for _, item := range v {
			t.Append(toLua(l, item))
		}
		return t
	case map[string]any:
		t := l.CreateTable(0, len(v))
		for key, item := range v {
			t.RawSetH(lua.LString(key), toLua(l, item))
		}
		return t
	default:
		return lua.LNil
	}
}

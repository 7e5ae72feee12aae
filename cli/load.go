package cli

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/yaml"
)

// Source says where an object came from, for error messages and notes.
type Source struct {
	// File is the manifest's path ("" for objects read from a cluster).
	File string
	// Doc is the 1-based index of the YAML document in File.
	Doc int
	// Line is the 1-based line the document starts on.
	Line int
	// Item is the 1-based index of the object in the document's list (kind
	// List, as `kubectl get -o yaml` writes), 0 when the document is the object.
	Item int
}

func (s Source) String() string {
	if s.File == "" {
		return "cluster"
	}
	if s.Item > 0 {
		return fmt.Sprintf("%s:%d (document %d, item %d)", s.File, s.Line, s.Doc, s.Item)
	}
	return fmt.Sprintf("%s:%d (document %d)", s.File, s.Line, s.Doc)
}

// Object is one manifest object with where it came from.
type Object struct {
	Source Source
	U      *unstructured.Unstructured
	// typed is the object in its Go type when LoadCluster decoded it so (from
	// protobuf), U being made from it; Build uses it instead of decoding U
	// again. Nobody changes it.
	typed runtime.Object
}

// Ref names the object as "Kind namespace/name" or "Kind name".
func (o *Object) Ref() string {
	if ns := o.U.GetNamespace(); ns != "" {
		return o.U.GetKind() + " " + ns + "/" + o.U.GetName()
	}
	return o.U.GetKind() + " " + o.U.GetName()
}

// ManifestError is a bad manifest: the file, the object and the field.
type ManifestError struct {
	Source Source
	// Object is "Kind namespace/name" when known.
	Object string
	// Field is the field path, e.g. "spec.template.spec.containers[0].name".
	Field string
	Err   error
}

func (e *ManifestError) Error() string {
	var b strings.Builder
	b.WriteString(e.Source.String())
	if e.Object != "" {
		b.WriteString(": ")
		b.WriteString(e.Object)
	}
	if e.Field != "" {
		b.WriteString(": field ")
		b.WriteString(e.Field)
	}
	b.WriteString(": ")
	b.WriteString(e.Err.Error())
	return b.String()
}

func (e *ManifestError) Unwrap() error { return e.Err }

// manifestExts are the file extensions read from a folder.
var manifestExts = map[string]bool{".yaml": true, ".yml": true, ".json": true}

// LoadFiles reads every manifest in paths: files as given, folders
// recursively (files ending in .yaml, .yml or .json, in lexical order). It
// returns every object, or the errors of every bad document joined.
func LoadFiles(paths []string) ([]Object, error) {
	if len(paths) == 0 {
		return nil, errors.New("no manifests: give -f with a file or a folder")
	}
	var files []string
	for _, p := range paths {
		st, err := os.Stat(p)
		if err != nil {
			return nil, fmt.Errorf("read manifests: %w", err)
		}
		if !st.IsDir() {
			files = append(files, p)
			continue
		}
		var found []string
		err = filepath.WalkDir(p, func(path string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			if !d.IsDir() && manifestExts[strings.ToLower(filepath.Ext(path))] {
				found = append(found, path)
			}
			return nil
		})
		if err != nil {
			return nil, fmt.Errorf("read manifests in %s: %w", p, err)
		}
		sort.Strings(found)
		files = append(files, found...)
	}
	var objs []Object
	var errs []error
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			return nil, fmt.Errorf("read manifests: %w", err)
		}
		o, err := ParseManifests(f, b)
		objs = append(objs, o...)
		if err != nil {
			errs = append(errs, err)
		}
	}
	return objs, errors.Join(errs...)
}

// document is one YAML document of a file and the line it starts on.
type document struct {
	line int
	data []byte
}

// splitDocuments splits a YAML stream on "---" lines.
func splitDocuments(b []byte) []document {
	var docs []document
	start, line := 1, 1
	var cur bytes.Buffer
	for len(b) > 0 {
		i := bytes.IndexByte(b, '\n')
		var l []byte
		if i < 0 {
			l, b = b, nil
		} else {
			l, b = b[:i+1], b[i+1:]
		}
		t := bytes.TrimRight(l, "\r\n")
		if bytes.HasPrefix(t, []byte("---")) && (len(t) == 3 || t[3] == ' ' || t[3] == '\t') {
			docs = append(docs, document{line: start, data: bytes.Clone(cur.Bytes())})
			cur.Reset()
			start = line + 1
		} else {
			cur.Write(l)
		}
		line++
	}
	return append(docs, document{line: start, data: cur.Bytes()})
}

// ParseManifests reads the objects of one file's content (YAML documents or
// JSON; a kind List is expanded into its items). Empty documents are skipped.
func ParseManifests(file string, b []byte) ([]Object, error) {
	var objs []Object
	var errs []error
	n := 0
	for _, d := range splitDocuments(b) {
		if len(bytes.TrimSpace(stripComments(d.data))) == 0 {
			continue
		}
		n++
		src := Source{File: file, Doc: n, Line: d.line}
		var m map[string]any
		if err := yaml.Unmarshal(d.data, &m); err != nil {
			errs = append(errs, &ManifestError{Source: src, Err: fmt.Errorf("not valid YAML: %w", err)})
			continue
		}
		if m == nil {
			continue
		}
		got, err := objectsOf(src, m)
		objs = append(objs, got...)
		if err != nil {
			errs = append(errs, err)
		}
	}
	return objs, errors.Join(errs...)
}

func stripComments(b []byte) []byte {
	var out []byte
	for _, l := range bytes.Split(b, []byte("\n")) {
		if t := bytes.TrimSpace(l); len(t) > 0 && t[0] != '#' {
			out = append(out, t...)
		}
	}
	return out
}

func objectsOf(src Source, m map[string]any) ([]Object, error) {
	u := &unstructured.Unstructured{Object: m}
	if err := checkHeader(src, u); err != nil {
		return nil, err
	}
	if !u.IsList() {
		return []Object{{Source: src, U: u}}, nil
	}
	// A typed list (DeploymentList, as the API's list calls return it) leaves
	// apiVersion and kind out of its items: they are the list's.
	itemKind := ""
	if k := u.GetKind(); k != "List" && strings.HasSuffix(k, "List") {
		itemKind = strings.TrimSuffix(k, "List")
	}
	var objs []Object
	var errs []error
	n := 0
	err := u.EachListItem(func(o runtime.Object) error {
		n++
		isrc := src
		isrc.Item = n
		item, ok := o.(*unstructured.Unstructured)
		if !ok {
			return fmt.Errorf("list item is %T, want an object", o)
		}
		if itemKind != "" {
			if _, set := item.Object["kind"]; !set {
				item.Object["kind"] = itemKind
			}
			if _, set := item.Object["apiVersion"]; !set {
				item.Object["apiVersion"] = u.GetAPIVersion()
			}
		}
		if err := checkHeader(isrc, item); err != nil {
			errs = append(errs, err)
			return nil
		}
		objs = append(objs, Object{Source: isrc, U: item})
		return nil
	})
	if err != nil {
		errs = append(errs, &ManifestError{Source: src, Object: "List", Field: "items", Err: err})
	}
	return objs, errors.Join(errs...)
}

// checkHeader makes sure an object says what it is and what it is called.
func checkHeader(src Source, u *unstructured.Unstructured) error {
	for _, f := range []string{"apiVersion", "kind"} {
		v, ok := u.Object[f]
		if !ok {
			return &ManifestError{Source: src, Field: f, Err: errors.New("required: every object needs apiVersion and kind")}
		}
		if s, isStr := v.(string); !isStr || s == "" {
			return &ManifestError{Source: src, Field: f, Err: fmt.Errorf("must be a non-empty string, got %v", v)}
		}
	}
	if u.IsList() {
		return nil
	}
	md, ok := u.Object["metadata"].(map[string]any)
	if !ok {
		return &ManifestError{Source: src, Object: u.GetKind(), Field: "metadata", Err: errors.New("required: an object with a name")}
	}
	for _, f := range []string{"name", "namespace"} {
		if v, present := md[f]; present {
			if s, isStr := v.(string); !isStr || (f == "name" && s == "") {
				return &ManifestError{Source: src, Object: u.GetKind(), Field: "metadata." + f, Err: fmt.Errorf("must be a non-empty string, got %v", v)}
			}
		}
	}
	if u.GetName() == "" {
		if u.GetGenerateName() != "" {
			return &ManifestError{Source: src, Object: u.GetKind() + " " + u.GetGenerateName() + "*", Field: "metadata.name",
				Err: errors.New("required: generateName alone cannot be planned offline")}
		}
		return &ManifestError{Source: src, Object: u.GetKind(), Field: "metadata.name", Err: errors.New("required")}
	}
	return nil
}

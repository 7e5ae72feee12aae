package image

import (
	"bufio"
	"encoding/json"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// finalStage is what the Dockerfile's last stage says about the image.
type finalStage struct {
	User       string
	Entrypoint []string
	Ports      []string
	Labels     map[string]string
	CopyTo     string
	Build      string // the RUN line of the build stage that runs go build
}

// parseDockerfile reads the instructions the image builder must agree with,
// joining continued lines. It reads only what this repository's Dockerfile
// uses: FROM, COPY, LABEL (key="value" pairs), EXPOSE, USER, ENTRYPOINT (JSON).
func parseDockerfile(t *testing.T, path string) finalStage {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = f.Close() }()
	var lines []string
	var cur strings.Builder
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if strings.HasPrefix(line, "#") || (line == "" && cur.Len() == 0) {
			continue
		}
		if s, ok := strings.CutSuffix(line, "\\"); ok {
			cur.WriteString(s + " ")
			continue
		}
		cur.WriteString(line)
		lines = append(lines, cur.String())
		cur.Reset()
	}
	var st finalStage
	for _, l := range lines {
		instr, rest, _ := strings.Cut(l, " ")
		rest = strings.TrimSpace(rest)
		switch strings.ToUpper(instr) {
		case "FROM":
			build := st.Build
			st = finalStage{Build: build}
		case "RUN":
			if strings.Contains(rest, "go build") {
				st.Build = rest
			}
		case "COPY":
			fields := strings.Fields(rest)
			st.CopyTo = fields[len(fields)-1]
		case "USER":
			st.User = rest
		case "ENTRYPOINT":
			if err := json.Unmarshal([]byte(rest), &st.Entrypoint); err != nil {
				t.Fatalf("ENTRYPOINT %s: want the JSON form: %v", rest, err)
			}
		case "EXPOSE":
			for _, p := range strings.Fields(rest) {
				if !strings.Contains(p, "/") {
					p += "/tcp"
				}
				st.Ports = append(st.Ports, p)
			}
		case "LABEL":
			if st.Labels == nil {
				st.Labels = map[string]string{}
			}
			for rest != "" {
				k, v, ok := strings.Cut(rest, "=")
				if !ok {
					t.Fatalf("LABEL %q: want key=\"value\" pairs", rest)
				}
				uq, err := strconv.QuotedPrefix(v)
				if err != nil {
					t.Fatalf("LABEL %s: want a quoted value: %v", k, err)
				}
				st.Labels[strings.TrimSpace(k)], _ = strconv.Unquote(uq)
				rest = strings.TrimSpace(v[len(uq):])
			}
		}
	}
	return st
}

// TestDockerfileAgrees keeps the Dockerfile and the image `make image` builds
// from drifting: the same user, entrypoint, exposed ports, labels, binary
// path and build flags.
func TestDockerfileAgrees(t *testing.T) {
	st := parseDockerfile(t, filepath.Join("..", "..", "Dockerfile"))
	spec := MeshshiftSpec(nil)
	if st.User != spec.User {
		t.Errorf("Dockerfile USER %q, make image's user %q", st.User, spec.User)
	}
	if diff := cmp.Diff(st.Entrypoint, spec.Entrypoint); diff != "" {
		t.Errorf("ENTRYPOINT differs (-Dockerfile +make image):\n%s", diff)
	}
	want := append([]string(nil), spec.ExposedPorts...)
	got := append([]string(nil), st.Ports...)
	sort.Strings(want)
	sort.Strings(got)
	if diff := cmp.Diff(got, want); diff != "" {
		t.Errorf("exposed ports differ (-Dockerfile +make image):\n%s", diff)
	}
	if diff := cmp.Diff(st.Labels, spec.Labels); diff != "" {
		t.Errorf("labels differ (-Dockerfile +make image):\n%s", diff)
	}
	if st.CopyTo != MeshshiftBinary {
		t.Errorf("Dockerfile copies the binary to %q, make image to %q", st.CopyTo, MeshshiftBinary)
	}
	for _, flag := range []string{"CGO_ENABLED=0", "-trimpath", "-s -w", "-X " + versionVar + "=", "./cmd/meshshift"} {
		if !strings.Contains(st.Build, flag) {
			t.Errorf("the Dockerfile's go build lacks %q (make image builds with it): %s", flag, st.Build)
		}
	}
}

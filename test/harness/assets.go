package harness

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// EnvAssetsCache overrides where the built binaries are cached; hack/assets.sh
// reads the same variable.
const EnvAssetsCache = "MESHSHIFT_ASSETS_CACHE"

const modulePath = "github.com/meshshift/meshshift"

// RepoRoot finds the root of the meshshift module from the working directory.
func RepoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", fmt.Errorf("get working directory: %w", err)
	}
	for {
		b, err := os.ReadFile(filepath.Join(dir, "go.mod"))
		if err == nil && strings.HasPrefix(string(b), "module "+modulePath+"\n") {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("find repository root: no go.mod of " + modulePath + " above the working directory")
		}
		dir = parent
	}
}

// CacheRoot is the folder that holds the cached binaries.
func CacheRoot() (string, error) {
	if d := os.Getenv(EnvAssetsCache); d != "" {
		return d, nil
	}
	if d := os.Getenv("XDG_CACHE_HOME"); d != "" {
		return filepath.Join(d, "meshshift", "assets"), nil
	}
	home, err := os.UserHomeDir()
	if err != nil {
		return "", fmt.Errorf("find cache folder: %w", err)
	}
	return filepath.Join(home, ".cache", "meshshift", "assets"), nil
}

// AssetDir is the cache folder of the nested module test/assets/<name>, keyed
// like hack/assets.sh keys it: the first 16 hex digits of the SHA-256 of its
// go.mod followed by its go.sum. It checks that the given files are there.
func AssetDir(name string, files ...string) (string, error) {
	root, err := RepoRoot()
	if err != nil {
		return "", err
	}
	var buf bytes.Buffer
	for _, f := range []string{"go.mod", "go.sum"} {
		b, err := os.ReadFile(filepath.Join(root, "test", "assets", name, f))
		if err != nil {
			return "", fmt.Errorf("read asset module %s: %w", name, err)
		}
		buf.Write(b)
	}
	sum := sha256.Sum256(buf.Bytes())
	cache, err := CacheRoot()
	if err != nil {
		return "", err
	}
	dir := filepath.Join(cache, name+"-"+hex.EncodeToString(sum[:])[:16])
	for _, f := range files {
		if _, err := os.Stat(filepath.Join(dir, f)); err != nil {
			return "", fmt.Errorf("asset %s/%s is not built (looked in %s): run `make assets` (hack/assets.sh %s): %w", name, f, dir, name, err)
		}
	}
	return dir, nil
}

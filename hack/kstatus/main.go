// Command kstatus prints what kstatus (sigs.k8s.io/cli-utils/pkg/kstatus/status), the
// library Flux's kustomize-controller, `kubectl wait`-style tooling and kpt use to judge a
// resource, computes for each object in the YAML files given: one JSON line per object,
// {"file", "name", "status", "message"}. tests/gitops/test_kstatus.py runs it over the
// objects captured from a real API server, so what the documentation claims about kstatus
// is what kstatus itself says, not our reading of its rules.
package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"os"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/cli-utils/pkg/kstatus/status"
	"sigs.k8s.io/yaml"
)

type verdict struct {
	File    string `json:"file"`
	Name    string `json:"name"`
	Status  string `json:"status"`
	Message string `json:"message"`
}

// documents splits a YAML stream on "---" lines (kubectl's multi-document form).
func documents(data []byte) [][]byte {
	var docs [][]byte
	var current bytes.Buffer
	scanner := bufio.NewScanner(bytes.NewReader(data))
	scanner.Buffer(make([]byte, 1024*1024), 64*1024*1024)
	for scanner.Scan() {
		line := scanner.Bytes()
		if bytes.Equal(bytes.TrimRight(line, " \t"), []byte("---")) {
			docs = append(docs, append([]byte(nil), current.Bytes()...))
			current.Reset()
			continue
		}
		current.Write(line)
		current.WriteByte('\n')
	}
	docs = append(docs, current.Bytes())
	return docs
}

func judge(file string, out io.Writer) error {
	data, err := os.ReadFile(file)
	if err != nil {
		return err
	}
	encoder := json.NewEncoder(out)
	for _, doc := range documents(data) {
		if len(bytes.TrimSpace(doc)) == 0 {
			continue
		}
		// Through JSON and Unstructured's own decoder, as a client reads the API server:
		// integers become int64 (kstatus refuses a float64 generation).
		js, err := yaml.YAMLToJSON(doc)
		if err != nil {
			return fmt.Errorf("%s: %w", file, err)
		}
		if bytes.Equal(bytes.TrimSpace(js), []byte("null")) {
			continue
		}
		u := &unstructured.Unstructured{}
		if err := u.UnmarshalJSON(js); err != nil {
			return fmt.Errorf("%s: %w", file, err)
		}
		result, err := status.Compute(u)
		if err != nil {
			return fmt.Errorf("%s: %s: %w", file, u.GetName(), err)
		}
		if err := encoder.Encode(verdict{file, u.GetName(), string(result.Status), result.Message}); err != nil {
			return err
		}
	}
	return nil
}

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: kstatus FILE.yaml...")
		os.Exit(2)
	}
	for _, file := range os.Args[1:] {
		if err := judge(file, os.Stdout); err != nil {
			fmt.Fprintln(os.Stderr, "kstatus:", err)
			os.Exit(1)
		}
	}
}

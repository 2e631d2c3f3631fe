// kstatus prints how sigs.k8s.io/cli-utils/pkg/kstatus (the status reader of Flux and kpt) reads
// each object given: one JSON line per file, {"file", "status", "message"}.
package main

import (
	"encoding/json"
	"fmt"
	"os"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/cli-utils/pkg/kstatus/status"
	"sigs.k8s.io/yaml"
)

func main() {
	encoder := json.NewEncoder(os.Stdout)
	for _, path := range os.Args[1:] {
		raw, err := os.ReadFile(path)
		check(err)
		obj := decode(raw)
		result, err := status.Compute(obj)
		check(err)
		check(encoder.Encode(map[string]string{
			"file": path, "status": result.Status.String(), "message": result.Message,
		}))
	}
}

// decode reads YAML the way the API server serves objects: integers stay int64, as in a live object.
func decode(raw []byte) *unstructured.Unstructured {
	data, err := yaml.YAMLToJSON(raw)
	check(err)
	obj := &unstructured.Unstructured{}
	check(obj.UnmarshalJSON(data))
	return obj
}

func check(err error) {
	if err != nil {
		fmt.Fprintln(os.Stderr, "kstatus:", err)
		os.Exit(1)
	}
}

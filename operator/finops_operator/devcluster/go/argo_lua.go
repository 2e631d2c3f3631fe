// argo-lua runs health and action scripts with Argo CD's own Lua evaluator (util/lua), with the
// restricted standard libraries the application-controller and API server give argocd-cm scripts.
//
//	argo-lua health    SCRIPT OBJECT.yaml   -> {"status": ..., "message": ...}
//	argo-lua discovery SCRIPT OBJECT.yaml   -> [{"name": ..., "disabled": ...}, ...]
//	argo-lua action    SCRIPT OBJECT.yaml   -> [{"k8sOperation": ..., "unstructuredObj": {...}}, ...]
package main

import (
	"encoding/json"
	"fmt"
	"os"

	"github.com/argoproj/argo-cd/v2/util/lua"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/yaml"
)

func main() {
	if len(os.Args) != 4 {
		fmt.Fprintln(os.Stderr, "usage: argo-lua health|discovery|action SCRIPT OBJECT.yaml")
		os.Exit(2)
	}
	script, err := os.ReadFile(os.Args[2])
	check(err)
	raw, err := os.ReadFile(os.Args[3])
	check(err)
	obj := decode(raw)
	vm := lua.VM{UseOpenLibs: false}
	var out any
	switch os.Args[1] {
	case "health":
		out, err = vm.ExecuteHealthLua(obj, string(script))
	case "discovery":
		out, err = vm.ExecuteResourceActionDiscovery(obj, []string{string(script)})
	case "action":
		out, err = vm.ExecuteResourceAction(obj, string(script))
	default:
		err = fmt.Errorf("unknown command %q", os.Args[1])
	}
	check(err)
	check(json.NewEncoder(os.Stdout).Encode(out))
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
		fmt.Fprintln(os.Stderr, "argo-lua:", err)
		os.Exit(1)
	}
}

// The judge of the consul-dataplane.json files mesh-init writes: compiled beside
// consul-dataplane's own command (scripts/peers.sh copies it into the source
// tree of the pinned release), it decodes each file into the release's own
// DataplaneConfigFlags with unknown keys refused, then builds and validates the
// runtime configuration exactly as `consul-dataplane -config-file` does.
//
//	CONSUL_ECS_DATAPLANE_CONFIGS=a.json:b.json consul-dataplane-config-check -test.run TestConfigFiles
//
// For each file it prints one line of JSON: the file and what consul-dataplane
// made of it (secrets left out), or the error.
package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hashicorp/consul-dataplane/pkg/consuldp"
)

type checked struct {
	File   string          `json:"file"`
	Error  string          `json:"error,omitempty"`
	Config *checkedRuntime `json:"config,omitempty"`
}

type checkedRuntime struct {
	Addresses           string            `json:"addresses"`
	GRPCPort            int               `json:"grpcPort"`
	ServerWatchDisabled bool              `json:"serverWatchDisabled"`
	TLSDisabled         bool              `json:"tlsDisabled"`
	CACertsPath         string            `json:"caCertsPath"`
	ServerName          string            `json:"serverName"`
	CredentialsType     string            `json:"credentialsType"`
	StaticTokenSet      bool              `json:"staticTokenSet"`
	LoginAuthMethod     string            `json:"loginAuthMethod"`
	LoginDatacenter     string            `json:"loginDatacenter"`
	LoginBearerTokenSet bool              `json:"loginBearerTokenSet"`
	LoginMeta           map[string]string `json:"loginMeta"`
	NodeName            string            `json:"nodeName"`
	ProxyID             string            `json:"proxyID"`
	Namespace           string            `json:"namespace"`
	Partition           string            `json:"partition"`
	ReadyBindAddress    string            `json:"readyBindAddress"`
	ReadyBindPort       int               `json:"readyBindPort"`
	XDSBindAddress      string            `json:"xdsBindAddress"`
	DNSBindAddress      string            `json:"dnsBindAddress"`
	DNSBindPort         int               `json:"dnsBindPort"`
	LogLevel            string            `json:"logLevel"`
}

func checkFile(path string) (*checkedRuntime, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	var strict DataplaneConfigFlags
	if err := dec.Decode(&strict); err != nil {
		return nil, fmt.Errorf("strict decode into DataplaneConfigFlags: %w", err)
	}
	if dec.More() {
		return nil, fmt.Errorf("strict decode: data after the JSON object")
	}
	opts := &FlagOpts{configFile: path}
	cfg, err := opts.buildDataplaneConfig(nil)
	if err != nil {
		return nil, fmt.Errorf("build runtime config: %w", err)
	}
	if _, err := consuldp.NewConsulDP(cfg); err != nil {
		return nil, fmt.Errorf("validate runtime config: %w", err)
	}
	out := &checkedRuntime{
		Addresses:           cfg.Consul.Addresses,
		GRPCPort:            cfg.Consul.GRPCPort,
		ServerWatchDisabled: cfg.Consul.ServerWatchDisabled,
		LogLevel:            cfg.Logging.LogLevel,
	}
	if cfg.Consul.TLS != nil {
		out.TLSDisabled = cfg.Consul.TLS.Disabled
		out.CACertsPath = cfg.Consul.TLS.CACertsPath
		out.ServerName = cfg.Consul.TLS.ServerName
	}
	if c := cfg.Consul.Credentials; c != nil {
		out.CredentialsType = string(c.Type)
		out.StaticTokenSet = c.Static.Token != ""
		out.LoginAuthMethod = c.Login.AuthMethod
		out.LoginDatacenter = c.Login.Datacenter
		out.LoginBearerTokenSet = c.Login.BearerToken != ""
		out.LoginMeta = c.Login.Meta
	}
	if cfg.Proxy != nil {
		out.NodeName = cfg.Proxy.NodeName
		out.ProxyID = cfg.Proxy.ProxyID
		out.Namespace = cfg.Proxy.Namespace
		out.Partition = cfg.Proxy.Partition
	}
	if cfg.Envoy != nil {
		out.ReadyBindAddress = cfg.Envoy.ReadyBindAddress
		out.ReadyBindPort = cfg.Envoy.ReadyBindPort
	}
	if cfg.XDSServer != nil {
		out.XDSBindAddress = cfg.XDSServer.BindAddress
	}
	if cfg.DNSServer != nil {
		out.DNSBindAddress = cfg.DNSServer.BindAddr
		out.DNSBindPort = cfg.DNSServer.Port
	}
	return out, nil
}

func TestConfigFiles(t *testing.T) {
	list := os.Getenv("CONSUL_ECS_DATAPLANE_CONFIGS")
	if list == "" {
		t.Fatal("CONSUL_ECS_DATAPLANE_CONFIGS names no file")
	}
	for _, path := range strings.Split(list, string(filepath.ListSeparator)) {
		res := checked{File: path}
		cfg, err := checkFile(path)
		if err != nil {
			res.Error = err.Error()
		} else {
			res.Config = cfg
		}
		line, _ := json.Marshal(res)
		fmt.Println(string(line))
	}
}

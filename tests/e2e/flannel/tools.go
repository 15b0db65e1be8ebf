//go:build tools

package main

import _ "github.com/flannel-io/flannel/cmd/install_conf"

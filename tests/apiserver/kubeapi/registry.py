"""Which resources are served, and the discovery / OpenAPI documents for them."""

import hashlib
import json
import threading

from . import resources as R

# Group order as kube-apiserver lists them (by group priority), CRD groups last.
GROUP_ORDER = ["", "apiregistration.k8s.io", "apps", "events.k8s.io", "authentication.k8s.io",
               "authorization.k8s.io", "autoscaling", "batch", "certificates.k8s.io", "networking.k8s.io",
               "policy", "rbac.authorization.k8s.io", "storage.k8s.io", "admissionregistration.k8s.io",
               "apiextensions.k8s.io", "scheduling.k8s.io", "coordination.k8s.io", "node.k8s.io",
               "discovery.k8s.io", "flowcontrol.apiserver.k8s.io"]


def _version_priority(v):
    """kube-aware version ordering: GA > beta > alpha, higher numbers first."""
    import re
    m = re.match(r"^v(\d+)(?:(alpha|beta)(\d+))?$", v)
    if not m:
        return (3, 0, 0, v)
    major = int(m.group(1))
    if m.group(2) is None:
        return (0, -major, 0, v)
    return (1 if m.group(2) == "beta" else 2, -major, -int(m.group(3)), v)


class Registry:
    def __init__(self):
        self.lock = threading.RLock()
        self.types = {}  # (group, version, plural) -> ResourceType
        self.crd_types = {}  # crd name -> [ResourceType]
        self.generation = 0
        for rt in R.builtin_types():
            self.types[(rt.group, rt.version, rt.plural)] = rt

    # ----------------------------------------------------------- lookups
    def get(self, group, version, plural):
        with self.lock:
            return self.types.get((group, version, plural))

    def by_storage(self, skey):
        with self.lock:
            return [rt for rt in self.types.values() if rt.storage == skey]

    def storage_types(self):
        """One ResourceType per storage key (the one used to walk stored objects)."""
        with self.lock:
            seen = {}
            for rt in self.types.values():
                if rt.storage not in seen or (rt.group == "" and seen[rt.storage].group != ""):
                    seen[rt.storage] = rt
            return list(seen.values())

    def groups(self):
        """[(group, [versions newest first])] in discovery order."""
        with self.lock:
            gv = {}
            for (g, v, _p) in self.types:
                gv.setdefault(g, set()).add(v)
            def gkey(g):
                if g in GROUP_ORDER:
                    return (0, GROUP_ORDER.index(g), g)
                # CRD groups: ordered by name after built-ins (their priority is 1000)
                return (1, 0, g)
            out = []
            for g in sorted(gv, key=gkey):
                vs = sorted(gv[g], key=_version_priority)
                if g:
                    crd_pref = self._crd_preferred(g)
                    if crd_pref and crd_pref in vs:
                        vs.remove(crd_pref)
                        vs.insert(0, crd_pref)
                out.append((g, vs))
            return out

    def _crd_preferred(self, group):
        return None

    def resources(self, group, version):
        with self.lock:
            rts = [rt for (g, v, _p), rt in self.types.items() if g == group and v == version]
            return sorted(rts, key=lambda rt: rt.plural)

    # ----------------------------------------------------------- CRDs
    def register_crd(self, crd):
        name = crd["metadata"]["name"]
        with self.lock:
            for rt in self.crd_types.pop(name, []):
                self.types.pop((rt.group, rt.version, rt.plural), None)
            rts = []
            for v in crd["spec"].get("versions") or []:
                if not v.get("served", True):
                    continue
                rt = R.crd_resource_type(crd, v["name"])
                self.types[(rt.group, rt.version, rt.plural)] = rt
                rts.append(rt)
            self.crd_types[name] = rts
            self.generation += 1
            return rts

    def unregister_crd(self, name):
        with self.lock:
            for rt in self.crd_types.pop(name, []):
                self.types.pop((rt.group, rt.version, rt.plural), None)
            self.generation += 1

    def crd_storage_key(self, crd):
        return "%s/%s" % (crd["spec"]["group"], crd["spec"]["names"]["plural"])

    # ----------------------------------------------------------- discovery
    def legacy_api_versions(self):
        return {"kind": "APIVersions", "versions": ["v1"],
                "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": "127.0.0.1:6443"}]}

    def api_group(self, group):
        for g, vs in self.groups():
            if g == group and g:
                versions = [{"groupVersion": "%s/%s" % (g, v), "version": v} for v in vs]
                return {"name": g, "versions": versions, "preferredVersion": versions[0]}
        return None

    def api_group_list(self):
        return {"kind": "APIGroupList", "apiVersion": "v1",
                "groups": [self.api_group(g) for g, _ in self.groups() if g]}

    def api_resource_list(self, group, version):
        rts = self.resources(group, version)
        if not rts:
            return None
        res = []
        for rt in rts:
            r = {"name": rt.plural, "singularName": rt.singular, "namespaced": rt.namespaced, "kind": rt.kind,
                 "verbs": list(rt.verbs)}
            if rt.short_names:
                r["shortNames"] = list(rt.short_names)
            if rt.categories:
                r["categories"] = list(rt.categories)
            r["storageVersionHash"] = rt.storage_version_hash()
            res.append(r)
            for sub in sorted(rt.subresources):
                res.append({"name": "%s/%s" % (rt.plural, sub), "singularName": "", "namespaced": rt.namespaced,
                            "kind": rt.kind if sub != "scale" else "Scale",
                            "group": "autoscaling" if sub == "scale" else None,
                            "version": "v1" if sub == "scale" else None,
                            "verbs": list(rt.subresources[sub])})
                if sub != "scale":
                    del res[-1]["group"]
                    del res[-1]["version"]
        gv = version if not group else "%s/%s" % (group, version)
        return {"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": gv, "resources": res}

    def _discovery_resource(self, rt):
        r = {"resource": rt.plural, "responseKind": {"group": "", "version": "", "kind": rt.kind},
             "scope": "Namespaced" if rt.namespaced else "Cluster", "singularResource": rt.singular,
             "verbs": list(rt.verbs)}
        if rt.short_names:
            r["shortNames"] = list(rt.short_names)
        if rt.categories:
            r["categories"] = list(rt.categories)
        subs = []
        for sub in sorted(rt.subresources):
            rk = {"group": "", "version": "", "kind": rt.kind}
            if sub == "scale":
                rk = {"group": "autoscaling", "version": "v1", "kind": "Scale"}
            subs.append({"subresource": sub, "responseKind": rk, "verbs": list(rt.subresources[sub])})
        if subs:
            r["subresources"] = subs
        return r

    def aggregated(self, legacy, version_tag="v2"):
        items = []
        for g, vs in self.groups():
            if legacy != (g == ""):
                continue
            versions = []
            for v in vs:
                versions.append({"version": v, "resources": [self._discovery_resource(rt) for rt in self.resources(g, v)],
                                 "freshness": "Current"})
            md = {"creationTimestamp": None}
            if g:
                md = {"name": g, "creationTimestamp": None}
            items.append({"metadata": md, "versions": versions})
        return {"kind": "APIGroupDiscoveryList", "apiVersion": "apidiscovery.k8s.io/%s" % version_tag,
                "metadata": {}, "items": items}

    # ----------------------------------------------------------- OpenAPI v3
    def openapi_paths(self):
        out = {}
        for g, vs in self.groups():
            for v in vs:
                key = "api/v1" if g == "" else "apis/%s/%s" % (g, v)
                doc = self.openapi_gv(g, v)
                h = hashlib.sha512(json.dumps(doc, sort_keys=True).encode()).hexdigest().upper()
                out[key] = {"serverRelativeURL": "/openapi/v3/%s?hash=%s" % (key, h)}
        return {"paths": out}

    def openapi_gv(self, group, version):
        rts = self.resources(group, version)
        gvname = "core" if not group else group
        paths = {}
        schemas = {}
        for rt in rts:
            base = ("/api/%s" % version) if not group else "/apis/%s/%s" % (group, version)
            coll = base + ("/namespaces/{namespace}/%s" % rt.plural if rt.namespaced else "/%s" % rt.plural)
            item = coll + "/{name}"
            gvk = {"group": group, "kind": rt.kind, "version": version}
            ref = "#/components/schemas/%s" % _schema_name(rt)
            params_common = [{"name": "dryRun", "in": "query", "description": "When present, indicates that modifications should not be persisted.", "schema": {"type": "string", "uniqueItems": True}},
                             {"name": "fieldManager", "in": "query", "description": "fieldManager is a name associated with the actor or entity that is making these changes.", "schema": {"type": "string", "uniqueItems": True}},
                             {"name": "fieldValidation", "in": "query", "description": "fieldValidation instructs the server on how to handle objects in the request (POST/PUT/PATCH) containing unknown or duplicate fields. Valid values are: Ignore, Warn (the default), Strict.", "schema": {"type": "string", "uniqueItems": True}}]
            body = {"content": {"application/json": {"schema": {"$ref": ref}}, "application/yaml": {"schema": {"$ref": ref}}}, "required": True}
            patch_types = ["application/apply-patch+yaml", "application/json-patch+json", "application/merge-patch+json"]
            # Built-in kinds accept strategic merge patches too, but we do not publish
            # their schemas; kubectl then computes strategic patches from its compiled-in types.
            patch_body = {"content": {pt: {"schema": {"$ref": "#/components/schemas/io.k8s.apimachinery.pkg.apis.meta.v1.Patch"}} for pt in patch_types}, "required": True}
            ok = {"200": {"description": "OK", "content": {"application/json": {"schema": {"$ref": ref}}}}}
            paths[coll] = {
                "get": {"operationId": "list" + rt.kind, "x-kubernetes-action": "list", "x-kubernetes-group-version-kind": gvk, "responses": ok},
                "post": {"operationId": "create" + rt.kind, "x-kubernetes-action": "post", "x-kubernetes-group-version-kind": gvk, "parameters": list(params_common), "requestBody": body, "responses": ok},
                "parameters": ([{"name": "namespace", "in": "path", "required": True, "schema": {"type": "string", "uniqueItems": True}}] if rt.namespaced else []),
            }
            paths[item] = {
                "get": {"operationId": "read" + rt.kind, "x-kubernetes-action": "get", "x-kubernetes-group-version-kind": gvk, "responses": ok},
                "put": {"operationId": "replace" + rt.kind, "x-kubernetes-action": "put", "x-kubernetes-group-version-kind": gvk, "parameters": list(params_common), "requestBody": body, "responses": ok},
                "patch": {"operationId": "patch" + rt.kind, "x-kubernetes-action": "patch", "x-kubernetes-group-version-kind": gvk,
                          "parameters": list(params_common) + [{"name": "force", "in": "query", "description": "Force is going to \"force\" Apply requests.", "schema": {"type": "boolean", "uniqueItems": True}}],
                          "requestBody": patch_body, "responses": ok},
                "delete": {"operationId": "delete" + rt.kind, "x-kubernetes-action": "delete", "x-kubernetes-group-version-kind": gvk, "responses": ok},
                "parameters": [{"name": "name", "in": "path", "required": True, "schema": {"type": "string", "uniqueItems": True}}] +
                              ([{"name": "namespace", "in": "path", "required": True, "schema": {"type": "string", "uniqueItems": True}}] if rt.namespaced else []),
            }
            sch = {"type": "object", "x-kubernetes-group-version-kind": [gvk]}
            if rt.schema:
                sch = json.loads(json.dumps(rt.schema))
                sch["x-kubernetes-group-version-kind"] = [gvk]
                props = sch.setdefault("properties", {})
                props.setdefault("apiVersion", {"type": "string", "description": "APIVersion defines the versioned schema of this representation of an object."})
                props.setdefault("kind", {"type": "string", "description": "Kind is a string value representing the REST resource this object represents."})
                props.setdefault("metadata", {"$ref": "#/components/schemas/io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"})
            schemas[_schema_name(rt)] = sch
        schemas["io.k8s.apimachinery.pkg.apis.meta.v1.Patch"] = {"type": "object", "description": "Patch is provided to give a concrete name and type to the Kubernetes PATCH request body."}
        schemas["io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"] = {"type": "object", "description": "ObjectMeta is metadata that all persisted resources must have."}
        return {"openapi": "3.0.0", "info": {"title": "Kubernetes", "version": "v1.32.4"}, "paths": paths,
                "components": {"schemas": schemas}}


def _schema_name(rt):
    if rt.builtin:
        g = rt.group.replace(".k8s.io", "") if rt.group else "core"
        return "io.k8s.api.%s.%s.%s" % (g, rt.version, rt.kind)
    parts = rt.group.split(".")
    return "%s.%s.%s" % (".".join(reversed(parts)), rt.version, rt.kind)

// The dashboard JSON shape Grafana accepts, built from Grafana Labs' own generated types
// (@grafana/grafana-foundation-sdk, Apache-2.0) and checked by the TypeScript compiler.
// tests/it/dashboards.rs writes each dashboard as `export const dashboard: GrafanaDashboard = <json>`
// and runs `tsc --noEmit --strict`; installed by scripts/grafana-schema.sh.
//
// What it adds to the SDK's types, and why:
// - `Json<T>`: the SDK's types as JSON files hold them: its string enums become their values
//   ("code", not QueryEditorMode.Code), methods are dropped, and every field may be left out
//   (Grafana fills in defaults on load). Unknown fields and wrong value types still fail, since
//   TypeScript checks object literals for excess properties.
// - panels are a union over the panel plugins the SDK has types for, keyed by `type`, each with
//   that plugin's own `options` and `fieldConfig.defaults.custom`: an unknown panel type fails.
// - `unit` is one of the SDK's unit ids (or Grafana's custom `suffix:`/`prefix:`/`si:`/`count:`/
//   `currency:`/`time:`/`bool:` forms): a unit Grafana does not know fails.
// - datasource references are objects with a known plugin type and a uid that exists in the
//   provisioned setup: the `${datasource}` variable, the provisioned `prometheus` uid, or
//   Grafana's built-in `-- Grafana --`, `-- Dashboard --` and `-- Mixed --`.
import type * as annotationslist from "@grafana/grafana-foundation-sdk/annotationslist";
import type * as barchart from "@grafana/grafana-foundation-sdk/barchart";
import type * as bargauge from "@grafana/grafana-foundation-sdk/bargauge";
import type * as dashboard from "@grafana/grafana-foundation-sdk/dashboard";
import type * as dashboardlist from "@grafana/grafana-foundation-sdk/dashboardlist";
import type * as gauge from "@grafana/grafana-foundation-sdk/gauge";
import type * as heatmap from "@grafana/grafana-foundation-sdk/heatmap";
import type * as histogram from "@grafana/grafana-foundation-sdk/histogram";
import type * as logs from "@grafana/grafana-foundation-sdk/logs";
import type * as piechart from "@grafana/grafana-foundation-sdk/piechart";
import type * as prometheus from "@grafana/grafana-foundation-sdk/prometheus";
import type * as stat from "@grafana/grafana-foundation-sdk/stat";
import type * as statetimeline from "@grafana/grafana-foundation-sdk/statetimeline";
import type * as statushistory from "@grafana/grafana-foundation-sdk/statushistory";
import type * as table from "@grafana/grafana-foundation-sdk/table";
import type * as text from "@grafana/grafana-foundation-sdk/text";
import type * as timeseries from "@grafana/grafana-foundation-sdk/timeseries";
import type * as xychart from "@grafana/grafana-foundation-sdk/xychart";

type Units = typeof import("@grafana/grafana-foundation-sdk/units");

/** A type as a JSON file holds it (see the header). */
export type Json<T> = 0 extends 1 & T
  ? any
  : T extends (...args: any[]) => any
    ? never
    : T extends string
      ? `${T}`
      : T extends number | boolean | null | undefined
        ? T
        : T extends readonly (infer U)[]
          ? Json<U>[]
          : T extends object
            ? { [K in keyof T as T[K] extends (...args: any[]) => any ? never : K]?: Json<T[K]> }
            : T;

/** Grafana's unit ids, and its parameterised custom units. */
export type Unit =
  | Units[keyof Units]
  | `suffix:${string}`
  | `prefix:${string}`
  | `si:${string}`
  | `count:${string}`
  | `currency:${string}`
  | `time:${string}`
  | `bool:${string}`;

export type DatasourceType = "prometheus" | "datasource" | "grafana";
export type DatasourceUid =
  | "${datasource}"
  | "prometheus"
  | "-- Grafana --"
  | "-- Dashboard --"
  | "-- Mixed --"
  | "grafana";
export type DatasourceRef = { type?: DatasourceType; uid?: DatasourceUid };

/** A Prometheus query as a panel target. */
export type Target = Omit<Json<prometheus.Dataquery>, "datasource" | "expr"> & {
  expr: string;
  datasource?: DatasourceRef;
};

/** Panel plugin id → [options, fieldConfig.defaults.custom]. */
interface Kinds {
  annolist: [annotationslist.Options, {}];
  barchart: [barchart.Options, barchart.FieldConfig];
  bargauge: [bargauge.Options, {}];
  dashlist: [dashboardlist.Options, {}];
  gauge: [gauge.Options, {}];
  heatmap: [heatmap.Options, heatmap.FieldConfig];
  histogram: [histogram.Options, histogram.FieldConfig];
  logs: [logs.Options, {}];
  piechart: [piechart.Options, piechart.FieldConfig];
  stat: [stat.Options, {}];
  "state-timeline": [statetimeline.Options, statetimeline.FieldConfig];
  "status-history": [statushistory.Options, statushistory.FieldConfig];
  table: [table.Options, table.FieldConfig];
  text: [text.Options, {}];
  timeseries: [timeseries.Options, timeseries.FieldConfig];
  xychart: [xychart.Options, xychart.FieldConfig];
}

type FieldDefaults<Custom> = Omit<Json<dashboard.FieldConfig>, "unit" | "custom"> & {
  unit?: Unit;
  custom?: Json<Custom>;
};

type PanelOf<K extends keyof Kinds> = Omit<
  Json<dashboard.Panel>,
  "type" | "options" | "fieldConfig" | "targets" | "datasource"
> & {
  type: K;
  datasource?: DatasourceRef;
  targets?: Target[];
  options?: Json<Kinds[K][0]>;
  fieldConfig?: { defaults?: FieldDefaults<Kinds[K][1]>; overrides?: Json<dashboard.FieldConfigSource["overrides"]> };
};

export type Panel = { [K in keyof Kinds]: PanelOf<K> }[keyof Kinds];

export type RowPanel = Omit<Json<dashboard.RowPanel>, "type" | "panels" | "datasource"> & {
  type: "row";
  datasource?: DatasourceRef;
  panels?: Panel[];
};

export type Variable = Omit<Json<dashboard.VariableModel>, "datasource"> & {
  datasource?: DatasourceRef;
};

export type Annotation = Omit<Json<dashboard.AnnotationQuery>, "datasource" | "target"> & {
  datasource?: DatasourceRef;
  target?: Json<prometheus.Dataquery> | Record<string, unknown>;
};

/** A dashboard file as provisioned: Grafana's dashboard model, strict. */
export type GrafanaDashboard = Omit<
  Json<dashboard.Dashboard>,
  "panels" | "templating" | "annotations" | "schemaVersion"
> & {
  schemaVersion: number;
  panels?: (Panel | RowPanel)[];
  templating: { list?: Variable[] };
  annotations: { list?: Annotation[] };
};

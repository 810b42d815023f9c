import * as z from "zod";
import { isTaskId } from "../domain/ids.js";

/**
 * CloudTrail records as the drift detector reads them: the `detail` of an EventBridge
 * `AWS API Call via CloudTrail` event, or one entry of a trail file's `Records`. Only the fields
 * the rules use are checked; everything else passes through untouched. Principal tags are not in
 * CloudTrail, so a record is joined to its task by what jitv sets on the session (CONTRACT.md
 * section 5): the role session name is the task id, the source identity the sanitised agent id.
 */

const recordSchema = z.object({
  eventID: z.string().min(1).max(128),
  eventTime: z.iso.datetime({ offset: true }),
  eventSource: z.string().min(1).max(256),
  eventName: z.string().min(1).max(256),
  eventType: z.literal("AwsApiCall"),
  sourceIPAddress: z.string().max(256).optional(),
  errorCode: z.string().max(256).optional(),
  userIdentity: z.object({
    type: z.literal("AssumedRole"),
    arn: z.string().max(2048),
    sessionContext: z.object({
      sourceIdentity: z.string().max(64).optional(),
      sessionIssuer: z.object({ arn: z.string().max(2048) }),
    }),
  }),
  requestParameters: z.record(z.string(), z.unknown()).nullish(),
  resources: z
    .array(z.object({ ARN: z.string().max(2048).optional(), type: z.string().max(256).optional() }))
    .max(100)
    .optional(),
});

/** A CloudTrail record of an API call made with the credentials of a jitv task. */
export interface TaskCall {
  readonly eventId: string;
  /** Normalised (`Date.toISOString()`), so times compare as strings. */
  readonly eventTime: string;
  readonly eventSource: string;
  readonly eventName: string;
  /** The task id: the session name of `userIdentity.arn`. */
  readonly taskId: string;
  /** The role of the session, with its path (`sessionContext.sessionIssuer.arn`). */
  readonly roleArn: string;
  /** `sessionContext.sourceIdentity`: jitv sets the sanitised agent id. */
  readonly sourceIdentity?: string;
  /** An IP address, or an AWS service's name when a service called on the session's behalf. */
  readonly sourceIp?: string;
  readonly errorCode?: string;
  /** Resource ARNs the record names (`resources[]`, or S3's `bucketName`/`key` parameters). */
  readonly resources: readonly string[];
}

const ASSUMED_ROLE_ARN = /^arn:([\w-]+):sts::(\d{12}):assumed-role\/([\w+=,.@-]{1,64})\/([\w+=,.@-]{2,64})$/;

/**
 * Reads a record made by a jitv task's session; anything else (another principal type, a
 * session whose name is not a task id, a role that does not match the session's issuer, a
 * service event) is `undefined`.
 *
 * @example
 * const call = taskCallOf(event.detail);
 * // → { taskId: "tsk_…", roleArn: "arn:aws:iam::210987654321:role/jitv/reports-reader", eventName: "GetObject", … }
 */
export function taskCallOf(record: unknown): TaskCall | undefined {
  const parsed = recordSchema.safeParse(record);
  if (!parsed.success) return undefined;
  const r = parsed.data;
  const [, partition, account, roleName, sessionName = ""] = ASSUMED_ROLE_ARN.exec(r.userIdentity.arn) ?? [];
  const roleArn = r.userIdentity.sessionContext.sessionIssuer.arn;
  // The issuer is the role with its path; the session ARN names the role without it.
  const issuer = `arn:${partition}:iam::${account}:role/`;
  if (!isTaskId(sessionName) || !roleArn.startsWith(issuer) || !roleArn.endsWith(`/${roleName}`)) {
    return undefined;
  }
  const { sourceIdentity } = r.userIdentity.sessionContext;
  return {
    eventId: r.eventID,
    eventTime: new Date(r.eventTime).toISOString(),
    eventSource: r.eventSource,
    eventName: r.eventName,
    taskId: sessionName,
    roleArn,
    ...(sourceIdentity === undefined ? {} : { sourceIdentity }),
    ...(r.sourceIPAddress === undefined ? {} : { sourceIp: r.sourceIPAddress }),
    ...(r.errorCode === undefined ? {} : { errorCode: r.errorCode }),
    resources: resourcesOf(r, partition ?? "aws"),
  };
}

/** The error codes AWS services report for a call IAM refused. */
const ACCESS_DENIED_CODES = new Set([
  "AccessDenied",
  "AccessDeniedException",
  "UnauthorizedOperation",
  "Client.UnauthorizedOperation",
]);

/** True when IAM (or the service's authorization) refused the call. */
export function isAccessDenied(call: Pick<TaskCall, "errorCode">): boolean {
  return call.errorCode !== undefined && ACCESS_DENIED_CODES.has(call.errorCode);
}

/** Service prefixes whose CloudTrail `eventSource` differs from the IAM prefix. */
const SERVICE_PREFIXES: Readonly<Record<string, string>> = {
  "monitoring.amazonaws.com": "cloudwatch",
  "email.amazonaws.com": "ses",
};

/**
 * CloudTrail event names that are not the name of the IAM action authorising them (S3's reads
 * and multipart uploads). Other services' API names are their action names.
 */
const S3_ACTIONS: Readonly<Record<string, string>> = {
  HeadObject: "GetObject",
  GetObjectAttributes: "GetObject",
  HeadBucket: "ListBucket",
  ListObjects: "ListBucket",
  ListObjectsV2: "ListBucket",
  ListObjectVersions: "ListBucketVersions",
  CreateMultipartUpload: "PutObject",
  UploadPart: "PutObject",
  UploadPartCopy: "PutObject",
  CompleteMultipartUpload: "PutObject",
  CopyObject: "PutObject",
  DeleteObjects: "DeleteObject",
  ListParts: "ListMultipartUploadParts",
};

/**
 * The IAM action that authorises a call, e.g. `s3.amazonaws.com` + `ListObjectsV2` →
 * `s3:ListBucket`, `lambda.amazonaws.com` + `Invoke20150331` → `lambda:InvokeFunction`.
 */
export function iamActionOf(call: Pick<TaskCall, "eventSource" | "eventName">): string {
  const prefix = SERVICE_PREFIXES[call.eventSource] ?? call.eventSource.split(".")[0] ?? call.eventSource;
  if (prefix === "s3") return `s3:${S3_ACTIONS[call.eventName] ?? call.eventName}`;
  if (prefix === "lambda") {
    // Lambda logs API versions in event names (`GetFunction20150331v2`).
    const name = call.eventName.replace(/20\d{6}(?:v\d+)?$/, "");
    return `lambda:${name === "Invoke" ? "InvokeFunction" : name}`;
  }
  return `${prefix}:${call.eventName}`;
}

function resourcesOf(r: z.infer<typeof recordSchema>, partition: string): string[] {
  const listed = (r.resources ?? []).flatMap((resource) => (resource.ARN ? [resource.ARN] : []));
  if (listed.length > 0 || r.eventSource !== "s3.amazonaws.com") return listed;
  // S3 management events name their bucket (and key) only in the request parameters.
  const { bucketName, key } = r.requestParameters ?? {};
  if (typeof bucketName !== "string") return [];
  const bucket = `arn:${partition}:s3:::${bucketName}`;
  return typeof key === "string" ? [`${bucket}/${key}`, bucket] : [bucket];
}

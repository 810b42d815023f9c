import { RemovalPolicy, Stack } from "aws-cdk-lib";
import {
  AccessLogFormat,
  type CfnRestApi,
  EndpointType,
  type JsonSchema,
  JsonSchemaType,
  LambdaIntegration,
  LogGroupLogDestination,
  MethodLoggingLevel,
  type Model,
  RequestValidator,
  ResponseType,
  RestApi,
} from "aws-cdk-lib/aws-apigateway";
import type { IFunction } from "aws-cdk-lib/aws-lambda";
import { LogGroup, type RetentionDays } from "aws-cdk-lib/aws-logs";
import { CfnWebACLAssociation } from "aws-cdk-lib/aws-wafv2";
import { NagSuppressions } from "cdk-nag";
import { Construct } from "constructs";
import { CONTRACT_ROUTES, type ContractRoute } from "../../lib/http/contract.js";
import { gatewayModelSchema } from "./gateway-models.js";

/**
 * Every route of the deployed API: the contract's one route table (lib/http/contract.ts), which
 * the handlers and the OpenAPI document use too. Paths outside it never reach the function.
 */
export const API_ROUTES = CONTRACT_ROUTES;

type GatewayModel = NonNullable<ContractRoute["gatewayModel"]>;

/** The API Gateway model of each checked body. */
export const GATEWAY_MODEL_NAMES: Readonly<Record<GatewayModel, string>> = {
  vend: "VendRequest",
  revoke: "RevokeRequest",
};

/**
 * What the gateway bounds beyond the body schema, where the contract leaves a field open:
 * `parameters` is checked against its template inside the function (declared names, each value
 * within its `maxLength` of at most 256), so the gateway only caps its size and shape.
 */
export const GATEWAY_NARROWING: Readonly<Record<GatewayModel, Readonly<Record<string, JsonSchema>>>> = {
  vend: {
    parameters: {
      maxProperties: 32,
      additionalProperties: false,
      patternProperties: {
        "^[A-Za-z][A-Za-z0-9_]{0,31}$": { type: JsonSchemaType.STRING, maxLength: 256 },
      },
    },
  },
  revoke: {},
};

/**
 * TLS policy of the API's own endpoint: TLS 1.2 and 1.3 only. (A regional API's default
 * endpoint otherwise accepts TLS 1.0.) Custom domains must use `SecurityPolicy.TLS_1_2` or stricter.
 */
export const API_SECURITY_POLICY = "TLS_1_2";

/** Fields of one access-log line (JSON). No header, no body, no query string: tokens never reach it. */
export const ACCESS_LOG_FIELDS = {
  requestId: "$context.requestId",
  extendedRequestId: "$context.extendedRequestId",
  xrayTraceId: "$context.xrayTraceId",
  requestTime: "$context.requestTime",
  ip: "$context.identity.sourceIp",
  userAgent: "$context.identity.userAgent",
  httpMethod: "$context.httpMethod",
  resourcePath: "$context.resourcePath",
  path: "$context.path",
  protocol: "$context.protocol",
  status: "$context.status",
  responseLength: "$context.responseLength",
  responseLatency: "$context.responseLatency",
  integrationLatency: "$context.integrationLatency",
  integrationStatus: "$context.integrationStatus",
  errorMessage: "$context.error.message",
  errorType: "$context.error.responseType",
  wafResponseCode: "$context.wafResponseCode",
  tlsVersion: "$context.tlsVersion",
  cipherSuite: "$context.cipherSuite",
} as const;

export interface VendingApiProps {
  /** The function behind every route (Lambda proxy integration). */
  readonly handler: IFunction;
  /** API stage name (the stage context value). */
  readonly stageName: string;
  /** Stage-wide steady-state rate (requests per second). */
  readonly rateLimit: number;
  /** Stage-wide burst. */
  readonly burstLimit: number;
  /** `POST /v1/tasks` steady-state rate. */
  readonly vendRateLimit: number;
  /** `POST /v1/tasks` burst. */
  readonly vendBurstLimit: number;
  /** Retention of the access and execution logs. */
  readonly logRetention: RetentionDays;
  /**
   * Regional WAFv2 web ACL to associate with the stage.
   * @default - no WAF (API Gateway throttling only)
   */
  readonly wafAclArn?: string;
}

/**
 * The jitv REST API: regional, TLS 1.2+, one resource per contract route with a Lambda proxy
 * integration, bodies of `POST /v1/tasks` and `/revoke` bounded and checked against a model
 * generated from the handlers' own zod schemas,
 * stage throttling plus a tighter limit on vending, JSON access logs, ERROR execution logs
 * without data, X-Ray tracing, and gateway errors in the contract's error shape.
 */
export class VendingApi extends Construct {
  readonly api: RestApi;
  readonly accessLogs: LogGroup;

  constructor(scope: Construct, id: string, props: VendingApiProps) {
    super(scope, id);
    const stack = Stack.of(this);
    this.accessLogs = new LogGroup(this, "AccessLogs", {
      retention: props.logRetention,
      removalPolicy: RemovalPolicy.RETAIN,
    });

    this.api = new RestApi(this, "Api", {
      restApiName: `${stack.stackName}-api`,
      description: "jitv: just-in-time AWS credentials for agents (CONTRACT.md section 3)",
      endpointConfiguration: { types: [EndpointType.REGIONAL] },
      // Execution logs need the account's API Gateway logging role; see the suppression below.
      cloudWatchRole: true,
      deployOptions: {
        stageName: props.stageName,
        throttlingRateLimit: props.rateLimit,
        throttlingBurstLimit: props.burstLimit,
        methodOptions: {
          // A method override replaces the stage defaults: repeat the logging settings.
          "/v1/tasks/POST": {
            throttlingRateLimit: props.vendRateLimit,
            throttlingBurstLimit: props.vendBurstLimit,
            loggingLevel: MethodLoggingLevel.ERROR,
            dataTraceEnabled: false,
          },
        },
        tracingEnabled: true,
        loggingLevel: MethodLoggingLevel.ERROR,
        // Full request/response logging would write bearer tokens and credentials to the logs.
        dataTraceEnabled: false,
        accessLogDestination: new LogGroupLogDestination(this.accessLogs),
        accessLogFormat: AccessLogFormat.custom(JSON.stringify(ACCESS_LOG_FIELDS)),
      },
    });
    (this.api.node.defaultChild as CfnRestApi).securityPolicy = API_SECURITY_POLICY;

    // API Gateway creates this group on first use with no retention; creating it first sets one.
    const executionLogs = new LogGroup(this, "ExecutionLogs", {
      logGroupName: `API-Gateway-Execution-Logs_${this.api.restApiId}/${props.stageName}`,
      retention: props.logRetention,
      removalPolicy: RemovalPolicy.RETAIN,
    });
    this.api.deploymentStage.node.addDependency(executionLogs);

    const validator = new RequestValidator(this, "Validator", {
      restApi: this.api,
      validateRequestBody: true,
      validateRequestParameters: true,
    });
    // One model per route the gateway checks, generated from the body schema its handler uses.
    const models = {} as Record<GatewayModel, Model>;
    for (const route of API_ROUTES) {
      if (route.gatewayModel === undefined || route.body === undefined) continue;
      const name = GATEWAY_MODEL_NAMES[route.gatewayModel];
      models[route.gatewayModel] = this.api.addModel(name, {
        contentType: "application/json",
        modelName: name,
        schema: gatewayModelSchema(route.body, name, GATEWAY_NARROWING[route.gatewayModel]),
      });
    }

    const integration = new LambdaIntegration(props.handler, { proxy: true, allowTestInvoke: false });
    for (const route of API_ROUTES) {
      const resource = this.api.root.resourceForPath(route.path);
      const pathParameters = [...route.path.matchAll(/\{(\w+)\}/g)].map((m) => m[1]);
      resource.addMethod(route.method, integration, {
        requestValidator: validator,
        requestParameters: Object.fromEntries(
          pathParameters.map((name) => [`method.request.path.${name}`, true]),
        ),
        ...(route.gatewayModel === undefined
          ? {}
          : { requestModels: { "application/json": models[route.gatewayModel] } }),
      });
    }

    this.addContractErrors();

    if (props.wafAclArn !== undefined) {
      new CfnWebACLAssociation(this, "WafAssociation", {
        resourceArn: this.api.deploymentStage.stageArn,
        webAclArn: props.wafAclArn,
      });
    } else {
      NagSuppressions.addResourceSuppressions(this.api.deploymentStage, [
        {
          id: "AwsSolutions-APIG3",
          reason:
            "WAF is optional (context wafAclArn) because a web ACL costs a monthly fee per ACL and rule; " +
            "without it the stage and POST /v1/tasks throttling bound the load and every request needs a verified OIDC token.",
        },
      ]);
    }

    NagSuppressions.addResourceSuppressions(
      this.api,
      [
        {
          id: "AwsSolutions-APIG4",
          reason:
            "Authentication is OIDC token verification inside the function, against several configured issuers " +
            "with replay protection and the contract's 401 + WWW-Authenticate answer; an API Gateway authorizer " +
            "cannot express that, and /healthz is public by contract.",
        },
        {
          id: "AwsSolutions-COG4",
          reason: "Callers are workloads and people of external OIDC issuers, not a Cognito user pool.",
        },
      ],
      true,
    );
    NagSuppressions.addResourceSuppressions(
      this.api,
      [
        {
          id: "AwsSolutions-IAM4",
          reason:
            "API Gateway's account-level logging role (needed for execution logs) uses the AWS managed policy " +
            "AmazonAPIGatewayPushToCloudWatchLogs, which only allows writing to CloudWatch Logs.",
          appliesTo: [
            "Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/AmazonAPIGatewayPushToCloudWatchLogs",
          ],
        },
      ],
      true,
    );
  }

  /** Gateway-generated errors in the contract's shape, so callers parse one error format. */
  private addContractErrors(): void {
    const errors: { type: ResponseType; status: string; code: string; message: string }[] = [
      {
        type: ResponseType.BAD_REQUEST_BODY,
        status: "400",
        code: "invalid_request",
        message: "request body does not match the API schema",
      },
      {
        type: ResponseType.BAD_REQUEST_PARAMETERS,
        status: "400",
        code: "invalid_request",
        message: "missing or invalid request parameters",
      },
      {
        type: ResponseType.REQUEST_TOO_LARGE,
        status: "400",
        code: "invalid_request",
        message: "request too large",
      },
      { type: ResponseType.THROTTLED, status: "429", code: "rate_limited", message: "too many requests" },
      // Without an API Gateway authorizer this means "no such route or method".
      {
        type: ResponseType.MISSING_AUTHENTICATION_TOKEN,
        status: "404",
        code: "not_found",
        message: "no such route",
      },
      { type: ResponseType.WAF_FILTERED, status: "403", code: "forbidden", message: "request blocked" },
      { type: ResponseType.ACCESS_DENIED, status: "403", code: "forbidden", message: "access denied" },
      {
        type: ResponseType.DEFAULT_4XX,
        status: "400",
        code: "invalid_request",
        message: "request refused by the API gateway",
      },
      { type: ResponseType.DEFAULT_5XX, status: "500", code: "internal", message: "internal error" },
    ];
    for (const error of errors) {
      this.api.addGatewayResponse(`Error${error.type.responseType}`, {
        type: error.type,
        statusCode: error.status,
        responseHeaders: { "content-type": "'application/json'", "cache-control": "'no-store'" },
        templates: {
          "application/json": JSON.stringify({ error: { code: error.code, message: error.message } }),
        },
      });
    }
  }
}

// Replaced by the DynamoDB Local global setup.
export default function setup(): void {}

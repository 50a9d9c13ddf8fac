/**
 * Command-line flags for every headless Chromium run of the test and benchmark scripts (Debian's chromium,
 * driven by playwright-core): no background traffic, WebGL on SwiftShader, and WebGPU on SwiftShader's Vulkan.
 */

/** No background traffic; WebGL through ANGLE on SwiftShader (software rendering, no GPU needed). */
export const HEADLESS_ARGS = [
  '--no-sandbox',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  '--no-first-run',
  '--disable-quic',
  '--enable-unsafe-swiftshader',
  '--use-angle=swiftshader',
];

/** WebGPU on SwiftShader's Vulkan (what Chromium offers here without a GPU). */
export const WEBGPU_ARGS = ['--enable-unsafe-webgpu', '--enable-features=Vulkan', '--use-vulkan=swiftshader'];
